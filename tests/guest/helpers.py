"""Helpers for guest tests: making guests, finding our QEMU processes."""

import time
from pathlib import Path

from harness.accel import choose_accel
from harness.guest import Guest
from harness.kernel import KernelImage
from harness.qemu import TOKEN_PARAM
from harness.spec import GuestSpec

MEM_MB = 2304
HUGEPAGES = {2048: 64, 1024 * 1024: 1}


def our_qemus() -> dict[int, str]:
    """PIDs of QEMUs started by this harness (their kernel command line carries a token)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"qemu-system-x86_64")
            and any(TOKEN_PARAM.encode() in a for a in argv)
        ):
            found[int(entry.name)] = b" ".join(argv).decode(errors="replace")[:200]
    return found


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {
            p
            for p in pids
            if Path(f"/proc/{p}").exists()
            and b"zombie" not in Path(f"/proc/{p}/status").read_bytes().lower()
        }
        if not pids:
            break
        time.sleep(0.1)
    return pids


def make_guest(
    kernel: KernelImage, mem_mb: int = MEM_MB, hugepages: dict[int, int] | None = None, **kw
) -> Guest:
    spec = GuestSpec(
        kernel=kernel.path,
        accel=choose_accel("auto").accel,
        mem_mb=mem_mb,
        hugepages=dict(HUGEPAGES if hugepages is None else hugepages),
    )
    spec.validate()
    return Guest(spec, kernel, **kw)
