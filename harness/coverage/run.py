"""`uffd-harness coverage` (cli/coverage.py is its argparse glue): which userfaultfd paths
of the kernel the suite executes.

Build (or reuse) a kernel with gcov profiling of the uffd-related files, run the suite on
it with the counters saved after each test (harness.suite.plugin, the `gcov` setting),
then merge the snapshots and report line and branch coverage of the related lines
(harness.coverage.report), per file and, with --per-workload, per workload.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import shutil
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from harness import HarnessError, UsageError
from harness.coverage import gcda
from harness.coverage.report import (
    attribution,
    counts_of,
    file_reports,
    format_attribution,
    format_table,
    load_unreachable,
    related_map,
    stale_entries,
    summary,
)
from harness.host.cache import cache_root
from harness.kernel.build import BZIMAGE, BuildRequest, build_kernel, built_from
from harness.kernel.gcov import FRAGMENT, make_vars, profiled_files
from harness.kernel.gcov import RELATED_HEADERS as HEADERS
from harness.kernel.kconfig import parse_config
from harness.settings.schema import GUEST, SUITE, as_flags

#: The build a coverage kernel starts from: the smallest config that runs the whole suite.
BASE, FRAGMENTS = "tinyconfig", ("minimal.config", FRAGMENT)

Say = Callable[[str, str], None]


def _fragment(name: str) -> Path:
    return Path(str(resources.files("harness.kernel").joinpath("configs", name)))


def default_build_dir(src: Path) -> Path:
    """A build directory per source tree in the cache: make keeps it incremental."""
    key = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:16]
    return cache_root() / "coverage-kernels" / f"{src.resolve().name}-{key}"


def coverage_kernel(src: Path | None, build: Path | None, jobs: int, say: Say) -> tuple[Path, Path]:
    """(build directory, source tree) of a gcov kernel: built from --src (incrementally,
    in --kernel-build or the cache), or an existing --kernel-build as it is."""
    if src is None:
        if build is None:
            raise UsageError(
                "give --src LINUX (a Linux source tree, e.g. Debian's: apt-get install "
                "linux-source-6.1; tar -xJf /usr/src/linux-source-6.1.tar.xz), or "
                "--kernel-build DIR of an earlier coverage build"
            )
        src = built_from(build)
        config = build / ".config"
        if src is None or not config.is_file() or not (build / BZIMAGE).is_file():
            raise UsageError(f"--kernel-build {build}: not a finished kernel build directory")
        if parse_config(config.read_text()).get("GCOV_KERNEL") != "y":
            raise UsageError(
                f"--kernel-build {build}: built without CONFIG_GCOV_KERNEL; give --src LINUX "
                "to build a coverage kernel (in the cache, or in a --kernel-build of its own)"
            )
        say("kernel", f"the existing build {build} (source {src})")
        return build, src
    build = build or default_build_dir(src)
    req = BuildRequest(
        src=src,
        out=build,
        base=BASE,
        fragments=[_fragment(f) for f in FRAGMENTS],
        jobs=jobs,
        make_vars=make_vars(),
    )
    build_kernel(req, say)
    return build, src.resolve()


def select_cases(patterns: list[str]) -> list[str]:
    """The suite's case ids (WORKLOAD-MEM) that any of the globs matches; a usage error
    for a glob that matches none."""
    from harness.agent.build import agent_cases

    ids = [f"{w}-{m}" for w, m in agent_cases()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
            raise UsageError(
                f"--filter {pattern!r} matches no case; cases are WORKLOAD-MEM, e.g. "
                f"{', '.join(ids[:3])} (glob: 'wp-*', '*-hugetlb')"
            )
    return [i for i in ids if any(fnmatch.fnmatchcase(i, p) for p in patterns)]


def run_suite(
    settings: dict[str, object], bzimage: Path, results: Path, cases: list[str] | None
) -> int:
    from harness.suite import SUITE as SUITE_FILE
    from harness.suite import run_pytest, suite_args

    values = {**settings, "kernel": str(bzimage), "results": results, "gcov": results / "gcov"}
    args = suite_args()
    if cases is not None:
        args = [*(f"{SUITE_FILE}::test_agent[{c}]" for c in cases), *args[1:]]
    argv = [*args, *as_flags(values, "pytest", GUEST + SUITE)]
    print(f"uffd-harness coverage: pytest {' '.join(argv)}", file=sys.stderr, flush=True)
    return run_pytest(argv)


_CASE = re.compile(r"\[(.+)\]$")


def workload_of(test: str, mems: list[str]) -> str:
    """`test_agent[wp-basic-hugetlb-1g]` -> `wp-basic`; other tests keep their name."""
    m = _CASE.search(test)
    if not m:
        return test
    case = m[1]
    for mem in sorted(mems, key=len, reverse=True):
        if case.endswith("-" + mem):
            return case[: -len(mem) - 1]
    return case


def process(
    results: Path, build: Path, src: Path, per_workload: bool, say: Say
) -> tuple[str, dict]:
    """The report (text) and its JSON summary from results/gcov/*.tar."""
    snaps = sorted((results / "gcov").glob("*.tar"))
    lost = sorted(p.stem for p in (results / "gcov").glob("*.lost"))
    if not snaps:
        raise HarnessError(f"no gcov snapshot in {results / 'gcov'}: no test ran to its end")
    out = results / "coverage"
    scratch = out / "scratch"
    files = (*profiled_files(), *HEADERS)
    t0 = time.monotonic()
    merged = out / "gcda"
    gcda.merge(snaps, build, merged, scratch)
    gcda.link_notes(merged, build)
    data = gcda.gcovr(merged, src, files, out / "gcovr.json", out / "html" / "index.html")
    say("report", f"{len(snaps)} snapshots merged, gcovr ran in {time.monotonic() - t0:.1f} s")

    def source(path: str) -> str:
        return (src / path).read_text(errors="replace")

    related = related_map(source)
    unreachable = load_unreachable()
    counts, branches = counts_of(data)
    reports = file_reports(counts, branches, related, source, unreachable)
    text = format_table(reports)
    rows = None
    if per_workload:
        from harness.agent.build import agent_cases

        mems = sorted({m for _, m in agent_cases()})
        groups: dict[str, list[Path]] = {}
        for s in snaps:
            groups.setdefault(workload_of(s.stem, mems), []).append(s)
        per: dict = {}
        for i, (w, tars) in enumerate(sorted(groups.items()), 1):
            say("per-workload", f"{i}/{len(groups)} {w} ({len(tars)} tests)")
            tree = scratch / "workload"
            gcda.merge(tars, build, tree, scratch)
            gcda.link_notes(tree, build)
            per[w] = counts_of(gcda.gcovr(tree, src, files, scratch / "w.json"))[0]
        rows = attribution(per, related)
        text += "\n" + format_attribution(rows)
    stale = stale_entries(unreachable, related)
    if stale:
        text += "\nlisted as unreachable but not a related function of this tree (stale):\n"
        text += "".join(f"  {u.file}:{u.function}\n" for u in stale)
    if lost:
        text += f"\ncounters lost with a guest that died: {', '.join(lost)}\n"
    # The merged counters are the snapshots' sum, which stay in RESULTS/gcov.
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(merged, ignore_errors=True)
    meta = {"source": str(src), "build": str(build), "snapshots": len(snaps), "lost": lost}
    return text, summary(reports, rows, **meta)
