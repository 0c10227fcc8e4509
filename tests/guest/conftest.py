from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.guest import Guest
from harness.kernel import KernelImage, default_kernel

from .helpers import make_guest, our_qemus, wait_gone


@pytest.fixture(scope="session")
def kernel() -> KernelImage:
    return default_kernel()


class SharedGuest:
    """One guest for the tests that leave it usable; replaced when it has died."""

    def __init__(self, kernel: KernelImage):
        self.kernel = kernel
        self.guest: Guest | None = None

    def get(self) -> Guest:
        if self.guest and not (self.guest.alive() and self.guest.ssh and self.guest.ssh.alive()):
            self.guest.stop()
            self.guest = None
        if self.guest is None:
            self.guest = make_guest(self.kernel).start()
        return self.guest

    def close(self) -> None:
        if self.guest:
            self.guest.stop()
            self.guest.cleanup()


@pytest.fixture(scope="session")
def shared(kernel) -> Iterator[SharedGuest]:
    holder = SharedGuest(kernel)
    yield holder
    holder.close()


@pytest.fixture
def guest(shared) -> Guest:
    return shared.get()


@pytest.fixture(autouse=True)
def no_stray_qemu(shared) -> Iterator[None]:
    """After every test, the only QEMU of ours may be the shared guest."""
    yield
    keep = {shared.guest.qemu.pid} if shared.guest and shared.guest.qemu else set()
    stray = wait_gone(set(our_qemus()) - keep)
    assert not stray, f"QEMU processes left behind: {stray}"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.guest)
