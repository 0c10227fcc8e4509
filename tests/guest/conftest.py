from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.guest.guest import Guest
from harness.kernel.image import KernelImage

from .helpers import our_qemus, wait_gone


@pytest.fixture
def kernel(guest: Guest) -> KernelImage:
    return guest.kernel


@pytest.fixture
def settings(guest_pool) -> dict:
    return guest_pool.settings


@pytest.fixture(autouse=True)
def no_stray_qemu(guest_pool) -> Iterator[None]:
    """After every test, the only QEMU of ours may be this process's shared guest."""
    yield
    shared = guest_pool.guest
    keep = {shared.qemu.pid} if shared and shared.qemu and shared.alive() else set()
    stray = wait_gone(set(our_qemus()) - keep)
    assert not stray, f"QEMU processes left behind: {stray}"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.guest)
