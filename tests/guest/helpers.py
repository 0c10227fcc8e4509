"""Helpers for guest tests: making extra guests, finding our QEMU processes."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.guest.guest import Guest, guest_from_settings
from harness.guest.qemu import TOKEN_PARAM
from harness.settings.schema import GUEST, Front, as_flags

# Every QEMU this test process starts, directly or through a CLI it runs, inherits this
# variable; other processes' guests (xdist workers, other runs) do not count as ours.
OWNER = f"UFFD_HARNESS_TEST_OWNER={os.getpid()}"
os.environ["UFFD_HARNESS_TEST_OWNER"] = str(os.getpid())


def make_guest(settings: dict, **overrides: object) -> Guest:
    """A guest (not started) from the session's settings, with some of them changed;
    Guest keyword arguments (recipe, backing, events) pass through."""
    guest_kw = {k: overrides.pop(k) for k in ("recipe", "backing", "events") if k in overrides}
    return guest_from_settings({**settings, **overrides}, **guest_kw)


def our_qemus() -> dict[int, str]:
    """PIDs of QEMUs started by this test process (see OWNER)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"qemu-system-x86_64")
            and any(TOKEN_PARAM.encode() in a for a in argv)
            and OWNER.encode() in env
        ):
            found[int(entry.name)] = b" ".join(argv).decode(errors="replace")[:200]
    return found


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """The PIDs still running (zombies count as gone) after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = set()
        for p in pids:
            try:
                if b"zombie" not in Path(f"/proc/{p}/status").read_bytes().lower():
                    alive.add(p)
            except OSError:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def guest_flags(settings: dict, front: Front = "cli") -> list[str]:
    """Flags (of the CLI, or of pytest) that boot the same guest as the session's settings."""
    return as_flags(settings, front, GUEST)


REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")


def ci_kernel_build(why: str) -> str:
    """Run .ci/build-kernel.sh (it unpacks Debian's linux-source-6.1 into build/src, once
    per package version, and builds build/min); its stdout. Without the source package it
    skips, or fails in CI, which must build kernels; `why` names what needs it."""
    if not SOURCE_TARBALL.exists():
        reason = f"{SOURCE_TARBALL} missing: `apt-get install linux-source-6.1` for {why}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run {why}: {reason}", pytrace=False)
        pytest.skip(reason)
    # The script runs the uffd-harness of this Python's environment (a venv need not be
    # on PATH).
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / ".ci" / "build-kernel.sh")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
    )
    if proc.returncode != 0:
        pytest.fail(f"kernel build failed:\n{proc.stderr[-4000:]}", pytrace=False)
    return proc.stdout
