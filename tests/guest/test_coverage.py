"""`uffd-harness coverage` end to end: a gcov kernel built from Debian's linux-source-6.1,
two cases of the suite run on it, their counters merged and attributed.

The build is incremental in build/coverage (or UFFD_COVERAGE_BUILD=DIR): about as long as
the minimal kernel's from scratch, seconds when warm. The source tree is the one
.ci/build-kernel.sh unpacks (or UFFD_KERNEL_SRC=DIR).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO_ROOT, ci_kernel_build, guest_flags

# Two workloads with disjoint purposes: write-protect on anonymous memory, minor faults
# resolved by UFFDIO_CONTINUE on shmem.
CASES = ["wp-basic-anon", "minor-basic-shmem"]

pytestmark = [pytest.mark.guest, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def source_tree() -> Path:
    given = os.environ.get("UFFD_KERNEL_SRC")
    if given:
        return Path(given)
    ci_kernel_build("a coverage kernel")  # unpacks the tree before its own build
    return REPO_ROOT / "build" / "src" / "linux-source-6.1"


@pytest.fixture(scope="module")
def coverage_run(source_tree, guest_pool, tmp_path_factory) -> tuple[Path, str]:
    build = Path(os.environ.get("UFFD_COVERAGE_BUILD", REPO_ROOT / "build" / "coverage"))
    results = tmp_path_factory.mktemp("coverage") / "results"
    argv = [
        sys.executable,
        "-m",
        "harness",
        "coverage",
        "--src",
        str(source_tree),
        "--kernel-build",
        str(build),
        "--results",
        str(results),
        "--per-workload",
        *guest_flags({**guest_pool.settings, "kernel": None}),
    ]
    for case in CASES:
        argv += ["--filter", case]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return results, proc.stdout


def by_path(summary: dict) -> dict[str, dict]:
    return {f["path"]: f for f in summary["files"]}


def executed(f: dict, function: str) -> int:
    """Related lines of a function that ran (0 if it has none)."""
    return f["functions"].get(function, [0, 0])[1]


def test_coverage_reports_every_file_with_real_counts(coverage_run):
    results, stdout = coverage_run
    summary = json.loads((results / "coverage" / "summary.json").read_text())
    files = by_path(summary)
    assert "fs/userfaultfd.c" in files and "mm/hugetlb.c" in files and "mm/memory.c" in files
    assert summary["snapshots"] == len(CASES) and summary["lost"] == []
    uffd = files["fs/userfaultfd.c"]
    # Two cases run a good part of fs/userfaultfd.c, far from all of it.
    assert 100 < uffd["covered"] < uffd["lines"], uffd
    # UFFDIO_WRITEPROTECT's and UFFDIO_CONTINUE's paths ran; hugetlb's copy path did not.
    mm_uffd = files["mm/userfaultfd.c"]
    assert executed(mm_uffd, "mwriteprotect_range") and executed(mm_uffd, "mcontinue_atomic_pte")
    assert files["mm/hugetlb.c"]["functions"]["hugetlb_mcopy_atomic_pte"][0] > 10
    assert executed(files["mm/hugetlb.c"], "hugetlb_mcopy_atomic_pte") == 0
    assert (results / "coverage" / "html" / "index.html").is_file()
    assert "fs/userfaultfd.c" in stdout and "target" in stdout


def test_per_workload_attribution_separates_the_workloads(coverage_run):
    results, _ = coverage_run
    summary = json.loads((results / "coverage" / "summary.json").read_text())
    rows = {r["workload"]: r for r in summary["workloads"]}
    assert set(rows) == {"wp-basic", "minor-basic"}
    only_wp = {fn for _, _, fn in rows["wp-basic"]["only_here"]}
    only_minor = {fn for _, _, fn in rows["minor-basic"]["only_here"]}
    assert "mwriteprotect_range" in only_wp, only_wp
    assert "mcontinue_atomic_pte" in only_minor or "shmem_get_folio_gfp" in only_minor, only_minor
