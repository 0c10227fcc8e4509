"""`uffd-harness kselftest --src LINUX`: the tree's own userfaultfd selftests in a guest, side
by side with the agent workloads that check the same behaviour."""

from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from harness import UsageError
from harness.cli.progress import Clock
from harness.kselftest.tree import Layout
from harness.results.rundir import RunDir, lock_run_dir, new_run_id
from harness.settings.options import add_guest_args, settings_from_args
from harness.settings.schema import GUEST, as_flags


def kselftest_exit_code(records: list, session_crashes: list) -> int:
    """As `uffd-harness run`: 3 a kernel crash, 1 a failure (or nothing passed), else 0."""
    if session_crashes or any(r.crashes for r in records):
        return 3
    if any(r.outcome in ("failed", "error", "xpassed") for r in records):
        return 1
    return 0 if any(r.outcome == "passed" for r in records) else 1


@dataclass
class Prepared:
    """A tree's selftests found and built, before any guest boots (bad input fails here)."""

    layout: Layout
    binaries: Path
    cached: bool
    build_seconds: float
    mem_types: tuple[str, ...]

    def meta(self) -> dict:
        return {
            "src": str(self.layout.src),
            "version": self.layout.version,
            "layout": self.layout.kind,
            "build": str(self.binaries),
            "build_seconds": round(self.build_seconds, 2),
            "build_cached": self.cached,
        }


def prepare(src: Path, mem_types_arg: str | None, clock: Clock) -> Prepared:
    from harness.kselftest.build import build_selftests
    from harness.kselftest.run import selected
    from harness.kselftest.tree import find_layout

    layout = find_layout(src)
    mem_types = tuple(m for m in (mem_types_arg or "").split(",") if m)
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
    seconds = time.monotonic() - t0
    how = "cached" if cached else "built"
    clock.say("build", f"{how} {', '.join(b.name for b in layout.binaries)} in {seconds:.2f} s")
    return Prepared(layout, binaries, cached, seconds, mem_types)


def execute(
    prep: Prepared,
    settings: dict,
    run: RunDir,
    clock: Clock,
    run_agent: bool = True,
    known: dict | None = None,
    lock: bool = True,
):
    """Run the selftests (and the agent peers not in `known`) into `run`, holding its
    directory; print the summary and the table; the Outcome."""
    from harness.kselftest.peers import table_text, throughput_text
    from harness.kselftest.run import Options, run_kselftests, write_table
    from harness.results.formats import summary_text
    from harness.verdict.known_issues import load_known_issues

    flags = as_flags({k: v for k, v in settings.items() if k != "results"}, "cli", GUEST)
    repro = ["uffd-harness", "kselftest", "--src", str(prep.layout.src), *flags]
    run.meta["kselftest"] = prep.meta()
    opts = Options(
        settings,
        run.root,
        prep.binaries,
        prep.mem_types,
        run_agent=run_agent,
        say=clock.say,
        events=clock,
        reproduce=shlex.join(repro),
    )
    held = lock_run_dir(run.root) if lock else None
    t1 = time.monotonic()
    try:
        out = run_kselftests(prep.layout, opts, run, load_known_issues(), known)
    finally:
        if held:
            held.close()
    t_run = time.monotonic() - t1
    table = table_text(out.rows)
    write_table(run.root, out.rows, table)
    print("\n== uffd-harness kselftest ==")
    print(summary_text(run.records, run.root, run.meta.get("session_crashes")), end="")
    print("\n== side by side: kernel selftests and uffd-agent ==")
    print(table, end="")
    rates = throughput_text(run.records)
    if rates:
        print("\n== fault round trips (same guest) ==")
        print(rates, end="")
    how = "cached" if prep.cached else "built"
    print(
        f"\nbuild {prep.build_seconds:.1f} s ({how}), run {t_run:.1f} s; "
        f"table: {run.root / 'side-by-side.txt'}"
    )
    return out


def cmd_kselftest(args: argparse.Namespace) -> int:
    from harness.results.provenance import provenance

    clock = Clock()
    settings = settings_from_args(args)
    prep = prepare(args.src, args.mem_types, clock)
    run_id = new_run_id()
    root = Path(str(settings["results"] or Path("results") / f"kselftest-{run_id}"))
    run = RunDir(root, {"run_id": run_id, "harness": provenance()}, run_id)
    out = execute(prep, settings, run, clock, run_agent=not args.no_agent)
    return kselftest_exit_code(out.records, out.session_crashes)


def run_with_kselftest(prep: Prepared, settings: dict, root: Path) -> int:
    """`uffd-harness run --with-kselftest`: after the suite, the selftests into the same
    run directory (one results.json, one summary); the table takes the suite's verdicts
    for the peers it ran and runs only the others. The selftests' exit code."""
    import json

    from harness.kselftest.run import agent_outcomes
    from harness.results.record import TestRecord

    path = root / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {"meta": {}, "tests": []}
    records = [TestRecord(**t) for t in data["tests"]]
    run = RunDir(root, data["meta"], data["meta"].get("run_id") or new_run_id())
    run.records = records
    # The suite's pytest session, in this process, holds the directory until the process
    # ends: a second lock of ours would be refused (flock is per open file).
    out = execute(prep, settings, run, Clock(), known=agent_outcomes(records), lock=False)
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
