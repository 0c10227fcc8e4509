"""`uffd-harness kselftest --src LINUX`: the tree's own userfaultfd selftests in a guest, side
by side with the agent workloads that check the same behaviour."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from harness import UsageError
from harness.cli.progress import Clock
from harness.settings.options import add_guest_args, settings_from_args
from harness.settings.schema import GUEST, as_flags


def kselftest_exit_code(records: list, session_crashes: list) -> int:
    """As `uffd-harness run`: 3 a kernel crash, 1 a failure (or nothing passed), else 0."""
    if session_crashes or any(r.crashes for r in records):
        return 3
    if any(r.outcome in ("failed", "error", "xpassed") for r in records):
        return 1
    return 0 if any(r.outcome == "passed" for r in records) else 1


def cmd_kselftest(args: argparse.Namespace) -> int:
    from harness.kselftest.build import build_selftests
    from harness.kselftest.peers import table_text
    from harness.kselftest.run import Options, run_kselftests, selected, write_table
    from harness.kselftest.tree import find_layout
    from harness.results.formats import summary_text
    from harness.results.provenance import provenance
    from harness.results.rundir import RunDir, lock_run_dir, new_run_id
    from harness.verdict.known_issues import load_known_issues

    clock = Clock()
    settings = settings_from_args(args)
    layout = find_layout(args.src)
    mem_types = tuple(m for m in (args.mem_types or "").split(",") if m)
    known = {i.mem for i in layout.invocations if i.mem}
    unknown = [m for m in mem_types if m not in known]
    if unknown:
        raise UsageError(
            f"--mem-types {','.join(unknown)}: not a memory type of this tree's selftests "
            f"(it runs {', '.join(sorted(known)) or 'none'})"
        )
    runs = selected(layout, mem_types)
    clock.say(
        "kselftest",
        f"{layout.src} (Linux {layout.version}, {layout.directory.relative_to(layout.src)}): "
        + "; ".join(i.label for i in runs),
    )
    t0 = time.monotonic()
    binaries, cached = build_selftests(layout)
    t_build = time.monotonic() - t0
    how = "cached" if cached else "built"
    clock.say("build", f"{how} {', '.join(b.name for b in layout.binaries)} in {t_build:.2f} s")
    run_id = new_run_id()
    root = Path(str(settings["results"] or Path("results") / f"kselftest-{run_id}"))
    lock = lock_run_dir(root)
    flags = as_flags({k: v for k, v in settings.items() if k != "results"}, "cli", GUEST)
    repro = ["uffd-harness", "kselftest", "--src", str(layout.src), *flags]
    meta = {
        "run_id": run_id,
        "harness": provenance(),
        "kselftest": {
            "src": str(layout.src),
            "version": layout.version,
            "layout": layout.kind,
            "build": str(binaries),
            "build_seconds": round(t_build, 2),
            "build_cached": cached,
        },
    }
    run = RunDir(root, meta, run_id)
    opts = Options(
        settings,
        root,
        binaries,
        mem_types,
        run_agent=not args.no_agent,
        say=clock.say,
        events=clock,
        reproduce=shlex.join(repro),
    )
    t1 = time.monotonic()
    try:
        out = run_kselftests(layout, opts, run, load_known_issues())
    finally:
        lock.close()
    t_run = time.monotonic() - t1
    table = table_text(out.rows)
    write_table(root, out.rows, table)
    print("\n== uffd-harness kselftest ==")
    print(summary_text(out.records, root, out.session_crashes), end="")
    print("\n== side by side: kernel selftests and uffd-agent ==")
    print(table, end="")
    print(f"\nbuild {t_build:.1f} s ({how}), run {t_run:.1f} s; table: {root / 'side-by-side.txt'}")
    return kselftest_exit_code(out.records, out.session_crashes)


def add_kselftest_parser(subparsers: argparse._SubParsersAction) -> None:
    k = subparsers.add_parser(
        "kselftest",
        help="run a kernel tree's own userfaultfd selftests, side by side with the agent",
        description="Build the userfaultfd selftests of a kernel tree statically (cached by "
        "source hash), run them in a guest with the arguments the tree's run_vmtests.sh "
        "uses for each memory type, record one result per case, run the agent workloads "
        "that check the same behaviour in the same guest, and print both side by side.",
    )
    k.add_argument("--src", type=Path, required=True, metavar="LINUX", help="kernel source tree")
    k.add_argument(
        "--mem-types",
        metavar="TYPE,...",
        help="only the runs of these memory types, as the selftest names them (e.g. anon, "
        "shmem, hugetlb, hugetlb_shared); runs without one (uffd-unit-tests) always run",
    )
    k.add_argument(
        "--no-agent",
        action="store_true",
        help="do not run the agent peers (the table shows them not run)",
    )
    k.add_argument(
        "--results", metavar="DIR", help="results directory (default results/kselftest-<run-id>)"
    )
    add_guest_args(k)
    k.set_defaults(func=cmd_kselftest)
