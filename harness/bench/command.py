"""uffd-harness bench: figures for boot, per-test overhead, caches, the suite and faults.

The command runs the chosen measurements (bench_builds, bench_boot with bench_agent,
bench_pytest), which only collect numbers into a Bench (bench_run), then prints and
writes what the pure modules make of them (bench_report, bench_profile). This module is
also the timing plugin's entry point: the bench's pytest runs load it with
`-p harness.bench.command`, and its pytest_configure registers timer.PytestTimer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.bench.boot import measure_boots
from harness.bench.builds import measure_builds
from harness.bench.pytest_runs import measure_overhead, measure_suite
from harness.bench.report import BenchReport, compute_ratios, evaluate_targets, render, report_json
from harness.bench.run import Bench
from harness.bench.timer import TIMING_ENV, PytestTimer

SECTIONS = ("builds", "boot", "overhead", "suite", "stress")


def pytest_configure(config: Any) -> None:
    """Registers PytestTimer when this module is loaded as a plugin for the bench."""
    path = os.environ.get(TIMING_ENV)
    if path and not config.pluginmanager.has_plugin("uffd-bench-timer"):
        config.pluginmanager.register(PytestTimer(Path(path)), "uffd-bench-timer")


def host_meta(b: Bench) -> dict[str, Any]:
    from harness.results.provenance import provenance

    template = b.template
    spec = template.spec
    from harness.guest.qemu import qemu_version

    qemu = qemu_version() or "unknown"
    return {
        "harness": provenance(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": str(template.kernel.path),
        "release": template.kernel.release,
        "accel": spec.accel,
        "accel_reason": template.accel_reason,
        "cpu": spec.cpu_model,
        "smp": spec.smp,
        "mem_mb": spec.mem_mb,
        "hugepages": b.settings["hugepages"],
        "qemu": qemu,
        "host_cpus": os.cpu_count(),
        "runs": b.runs,
        "tests": b.tests,
        "suite_runs": b.suite_runs,
        "sections": list(b.sections),
    }


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_bench(b: Bench) -> BenchReport:
    b.meta = host_meta(b)
    b.meta["load_start"] = _loadavg()
    steps: list[tuple[str, Callable[[Bench], None]]] = [
        ("builds", measure_builds),
        ("boot", measure_boots),
        ("overhead", measure_overhead),
        ("suite", measure_suite),
    ]
    for name, step in steps:
        if name in b.sections:
            step(b)
    if "stress" in b.sections and not b.stress:
        b.stress = {"available": False, "reason": _stress_reason(b)}
    b.meta["load_end"] = _loadavg()
    b.meta["case"] = list(b.case) if b.case else None
    accel, smp = b.meta["accel"], b.meta["smp"]
    return BenchReport(
        b.meta,
        b.figures,
        compute_ratios(b.figures),
        evaluate_targets(b.figures, accel, smp),
        b.profiles,
        b.stress or {"available": False, "reason": "not measured (--only)"},
        b.errors,
    )


def _stress_reason(b: Bench) -> str:
    if "boot" not in b.sections:
        return "needs the boot section (it runs on the first ready guest)"
    if b.agent_names is not None and "stress" not in b.agent_names:
        return "the agent has no stress workload"
    return "the agent did not run (see errors)"


def parse_case(text: str) -> tuple[str, str]:
    workload, sep, mem = text.partition(":")
    if not sep or not workload or not mem:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WORKLOAD:MEM, e.g. wp-errors:anon")
    return workload, mem


def parse_sections(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(bad) or '(none)'}; choose from {', '.join(SECTIONS)}"
        )
    return names


def _stderr(phase: str, message: str) -> None:
    print(f"bench {phase}: {message}", file=sys.stderr, flush=True)


def cmd_bench(args: argparse.Namespace) -> int:
    from harness import UsageError
    from harness.host.cache import publish
    from harness.results.rundir import new_run_id
    from harness.settings.options import settings_from_args

    settings = settings_from_args(args)  # checked before anything is made
    # Absolute: the pytest runs work in other directories.
    workdir = (args.results or Path("results") / f"bench-{new_run_id()}").resolve()
    b = Bench(
        settings=settings,
        runs=args.runs,
        tests=args.tests,
        suite_runs=args.suite_runs,
        sections=args.only,
        workdir=workdir,
        case=args.workload,
        stress_seconds=args.stress_seconds,
        stress_threads=args.stress_threads,
        say=_stderr,
    )
    if args.kselftest_src:
        from harness.kselftest.build import build_selftests
        from harness.kselftest.tree import find_layout

        if "stress" not in b.sections:
            raise UsageError("--kselftest-src adds to the stress figures: keep stress in --only")
        layout = find_layout(args.kselftest_src)
        b.kselftest = (layout, build_selftests(layout)[0])
    if "overhead" in b.sections and b.case is None and "boot" not in b.sections:
        raise UsageError("--only without boot needs --workload WORKLOAD:MEM for the overhead")
    workdir.mkdir(parents=True, exist_ok=True)
    report = run_bench(b)
    text = render(report)
    print(text, end="")
    data = json.dumps(report_json(report), indent=1) + "\n"
    publish(workdir / "bench.json", data)
    (workdir / "bench.txt").write_text(text)
    if args.json:
        publish(args.json, data)
    print(f"\nfigures and logs: {workdir}", file=sys.stderr)
    return 1 if report.errors else 0


def add_bench_parser(subparsers: Any) -> None:
    """Register `uffd-harness bench` on the CLI's subparsers."""
    from harness.settings.options import add_guest_args, arg_type
    from harness.settings.values import parse_count, parse_directory

    count = arg_type(parse_count)

    p = subparsers.add_parser(
        "bench",
        help="measure boot, per-test overhead, caches, the suite and fault round trips",
        description="Measure, in one run on this machine: bare boot and boot to ready, "
        "per-test overhead, cold and cached image and agent builds, the uffd suite's wall "
        "time, and the agent's stress workload; print min/median/max, ratios and where we "
        "stand against the targets (with a breakdown of where the time goes when missed).",
    )
    add_guest_args(p)
    p.add_argument("--runs", type=count, default=5, help="runs of each cheap figure (5)")
    p.add_argument(
        "--tests", type=count, default=20, help="tests measured for per-test overhead (20)"
    )
    p.add_argument("--suite-runs", type=count, default=1, help="runs of the suite (1)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    p.add_argument(
        "--results",
        type=arg_type(parse_directory),
        metavar="DIR",
        help="logs and bench.json (default results/bench-<run-id>)",
    )
    p.add_argument(
        "--only",
        type=parse_sections,
        default=SECTIONS,
        metavar="SECTION,...",
        help=f"measure only these: {', '.join(SECTIONS)} (default: all)",
    )
    p.add_argument(
        "--workload",
        type=parse_case,
        metavar="WORKLOAD:MEM",
        help="case for the per-test overhead (default: the cheapest passing one on anon)",
    )
    p.add_argument("--stress-seconds", type=count, default=10, help="per memory type (10)")
    p.add_argument("--stress-threads", type=count, default=4, help="stress threads (4)")
    p.add_argument(
        "--kselftest-src",
        type=Path,
        metavar="LINUX",
        help="also run this kernel tree's userfaultfd selftest stress part on each stress "
        "memory type, as a peer figure (see `uffd-harness kselftest`)",
    )
    p.set_defaults(func=cmd_bench)
