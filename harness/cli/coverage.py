"""`uffd-harness coverage`: argparse glue over harness.coverage.run."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness import UsageError
from harness.cli.progress import Clock
from harness.coverage.run import coverage_kernel, process, run_suite, select_cases
from harness.kernel.build import BZIMAGE
from harness.settings.options import add_guest_args, add_suite_args, settings_from_args


def cmd_coverage(args: argparse.Namespace) -> int:
    clock = Clock()
    settings = settings_from_args(args)
    if settings["kernel"]:
        raise UsageError("coverage boots the kernel it builds: give --src or --kernel-build")
    if settings["gcov"]:
        raise UsageError("coverage saves the counters itself, in RESULTS/gcov: drop --gcov")
    cases = select_cases(args.filter) if args.filter else None
    t0 = time.monotonic()
    build, src = coverage_kernel(args.src, args.kernel_build, args.jobs, clock.say)
    t_build = time.monotonic() - t0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = Path(str(settings["results"] or Path("results") / f"coverage-{stamp}"))
    t1 = time.monotonic()
    rc = run_suite(settings, build / BZIMAGE, results, cases)
    t_suite = time.monotonic() - t1
    t2 = time.monotonic()
    text, data = process(results, build, src, args.per_workload, clock.say)
    t_report = time.monotonic() - t2
    data["seconds"] = {
        "build": round(t_build, 1),
        "suite": round(t_suite, 1),
        "report": round(t_report, 1),
    }
    out = results / "coverage"
    (out / "summary.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "summary.txt").write_text(text)
    print("\n== uffd-harness coverage ==")
    print(text, end="")
    print(
        f"\nkernel build {t_build:.0f} s, suite {t_suite:.0f} s, report {t_report:.0f} s"
        f"\nHTML: {out / 'html' / 'index.html'}\nJSON: {out / 'summary.json'}"
    )
    return rc


def add_coverage_parser(subparsers: argparse._SubParsersAction) -> None:
    c = subparsers.add_parser(
        "coverage",
        help="kernel line and branch coverage of the userfaultfd paths under the suite",
        description="Build a kernel with gcov profiling of the userfaultfd-related files "
        "(tinyconfig + minimal.config + coverage.config; incremental, in the cache or "
        "--kernel-build), run the suite on it saving the counters after each test, and "
        "report per file the related lines executed and every one that was not.",
    )
    c.add_argument("--src", type=Path, metavar="LINUX", help="Linux source tree to build")
    c.add_argument(
        "--kernel-build",
        type=Path,
        metavar="DIR",
        help="build directory (default: one per --src in the cache); without --src, an "
        "earlier coverage build used as it is",
    )
    c.add_argument(
        "--filter",
        action="append",
        metavar="GLOB",
        help="only the cases WORKLOAD-MEM matching GLOB, e.g. 'wp-*' (repeatable)",
    )
    c.add_argument(
        "--per-workload",
        action="store_true",
        help="also attribute the related lines to workloads: which each reaches, which only it",
    )
    c.add_argument(
        "-j", "--jobs", type=int, default=0, metavar="N", help="build jobs (default: CPUs)"
    )
    add_guest_args(c)
    add_suite_args(c)
    c.set_defaults(func=cmd_coverage)
