"""gcov counters of a coverage kernel (CONFIG_GCOV_KERNEL), read out of a running guest.

The kernel keeps one counter set per profiled object under /sys/kernel/debug/gcov, as
.gcda files named after the object's path in the build tree. A snapshot copies them and
resets the counters in one command, so consecutive snapshots count disjoint work: the
coverage of one test is the snapshot taken after it.
"""

from __future__ import annotations

from harness import HarnessError
from harness.guest.guest import Guest

GCOV_ROOT = "/sys/kernel/debug/gcov"
_MOUNT = "grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug"
_RESET = f"echo 1 > {GCOV_ROOT}/reset"
# debugfs reports each .gcda file's size as 0, so tar alone would archive empty files:
# `cat` copies them to a tmpfs first (as Documentation/dev-tools/gcov.rst does).
_SNAPSHOT = (
    f"set -e; d=$(mktemp -d); cd {GCOV_ROOT}; "
    "find . -name '*.gcda' | while read -r f; do "
    'mkdir -p "$d/${f%/*}"; cat "$f" > "$d/$f"; done; '
    f'tar -C "$d" -cf - .; rm -rf "$d"; {_RESET}'
)


def reset(guest: Guest, timeout: float = 60.0) -> None:
    """Zero every counter (after boot: the suite's coverage is not the boot's)."""
    res = guest.run(f"{_MOUNT} && test -e {GCOV_ROOT}/reset && {_RESET}", timeout)
    if res.exit_code != 0:
        raise HarnessError(
            f"the guest kernel {guest.kernel.release} has no gcov counters ({GCOV_ROOT}): "
            "boot a kernel built with CONFIG_GCOV_KERNEL and CONFIG_DEBUG_FS, as "
            "`uffd-harness coverage` builds it"
        )


def snapshot(guest: Guest, timeout: float = 120.0) -> bytes:
    """A tar of every .gcda file (paths as under GCOV_ROOT), then the counters reset."""
    res = guest.run(_SNAPSHOT, timeout)
    if res.exit_code != 0 or not res.stdout:
        err = res.stderr.decode(errors="replace").strip().splitlines()
        raise HarnessError(
            f"could not read the gcov counters of the guest (exit {res.exit_code}): "
            + (err[-1] if err else "no output")
        )
    return res.stdout
