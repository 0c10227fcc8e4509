"""A kernel built from Debian's linux-source-6.1 with kernel-configs/minimal.config, booted
and run through a smoke subset of the uffd suite (issue: kernels with the patches).

The build is .ci/build-kernel.sh (incremental, ccache): minutes from scratch on 2 cores,
seconds when warm. UFFD_BUILT_KERNEL=PATH uses an existing bzImage instead.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO_ROOT, ci_kernel_build, guest_flags

SMOKE = ["wp-basic", "wp-fork-cow", "minor-basic", "missing-copy", "continue-errors"]

pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def built_kernel() -> Path:
    given = os.environ.get("UFFD_BUILT_KERNEL")
    if given:
        return Path(given)
    bzimage = Path(REPO_ROOT / ci_kernel_build("a built kernel").split()[0])
    assert bzimage.is_file(), bzimage
    return bzimage


def test_built_kernel_config(built_kernel):
    out = subprocess.run(
        [sys.executable, "-m", "harness", "kernel", "info", str(built_kernel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for option in ("CONFIG_USERFAULTFD", "CONFIG_PTE_MARKER_UFFD_WP", "CONFIG_HUGETLBFS"):
        assert re.search(rf"^\s*{option}\s+y$", out.stdout, re.M), out.stdout


@pytest.mark.parametrize("workload", SMOKE)
def test_smoke_suite_on_built_kernel(built_kernel, settings, workload):
    flags = guest_flags({**settings, "kernel": None})
    argv = [
        sys.executable,
        "-m",
        "harness",
        "agent",
        *flags,
        "--kernel",
        str(built_kernel),
        "--",
        "suite",
        "--filter",
        workload,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, f"{last}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (\w+)", last))
    assert counts.get("failed") == 0 and counts.get("passed", 0) > 0, last
