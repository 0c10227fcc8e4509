"""uffd-harness bench: figures for boot, per-test overhead, caches, the suite and faults.

Two halves. The first is pure: statistics, boot timelines, overhead breakdowns, targets,
the table and the JSON, all functions of recorded numbers (tests/unit/test_bench.py runs
them on figures recorded from real runs). The second measures: it builds into empty
caches, boots guests, and runs pytest on the suite's own test function with a small
timing plugin (this module, loaded with `-p harness.bench`), and only collects numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker

if TYPE_CHECKING:
    from .guest import Guest

# pytest's own marker, without importing pytest into every CLI start.
hookimpl = HookimplMarker("pytest")

SECTIONS = ("builds", "boot", "overhead", "suite", "stress")
STRESS_MEMS = ("anon", "shmem", "hugetlb")
FAULT_KINDS = ("missing", "wp", "minor")
#: The agent's JSON key for its own wall time.
AGENT_DURATION = "duration_s"
# The whole line, so a number still being written is never read half.
BARE_LINE = re.compile(rb"uffd-bench: bare init up ([0-9.]+)\r?\n")
TIMING_ENV = "UFFD_BENCH_TIMING"


# =========================================================================================
# Pure part: numbers in, numbers and text out.
# =========================================================================================


@dataclass(frozen=True)
class Stats:
    n: int
    min: float
    median: float
    max: float


def stats(samples: list[float]) -> Stats | None:
    if not samples:
        return None
    return Stats(len(samples), min(samples), statistics.median(samples), max(samples))


def median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


@dataclass
class Figure:
    key: str
    label: str
    samples: list[float] = field(default_factory=list)  # seconds
    error: str = ""

    @property
    def stats(self) -> Stats | None:
        return stats(self.samples)


@dataclass(frozen=True)
class Ratio:
    key: str
    label: str
    value: float | None


@dataclass(frozen=True)
class Target:
    key: str
    text: str
    value: float | None  # None: not measured in this run
    limit: float
    unit: str  # "s", "x" or "%"
    detail: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit


@dataclass
class ProfileRow:
    label: str
    seconds: float | None
    note: str = ""


@dataclass
class BenchReport:
    meta: dict[str, Any]
    figures: list[Figure]
    ratios: list[Ratio]
    targets: list[Target]
    profiles: dict[str, list[ProfileRow]]
    stress: dict[str, Any]
    errors: list[str] = field(default_factory=list)


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) < 0.01:
        return f"{value * 1000:.1f} ms"
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f} x"
    if unit == "%":
        return f"{value * 100:.1f} %"
    return fmt_seconds(value)


def medians(figures: list[Figure]) -> dict[str, float]:
    return {f.key: m for f in figures if (m := median(f.samples)) is not None}


def ratio_of(values: dict[str, float], num: str, den: str) -> float | None:
    if num not in values or not values.get(den):
        return None
    return values[num] / values[den]


def compute_ratios(figures: list[Figure]) -> list[Ratio]:
    m = medians(figures)
    return [
        Ratio(
            "boot_ready_over_bare",
            "boot to ready / bare boot (medians)",
            ratio_of(m, "boot.ready", "boot.bare"),
        ),
        Ratio(
            "suite_overhead_over_wall",
            "suite overhead / suite wall (medians)",
            ratio_of(m, "suite.overhead", "suite.wall"),
        ),
    ]


def _miss(value: float, limit: float, unit: str) -> str:
    over = value - limit
    if unit == "x":
        return f"missed by {over:.2f} x"
    if unit == "%":
        return f"missed by {over * 100:.1f} points"
    return f"missed by {fmt_seconds(over)}"


def _target(key: str, text: str, value: float | None, limit: float, unit: str, cond: str) -> Target:
    if value is None:
        detail = "not measured in this run"
    elif value <= limit:
        detail = f"met: {fmt_value(value, unit)} (limit {fmt_value(limit, unit)})"
    else:
        detail = (
            f"{_miss(value, limit, unit)}: {fmt_value(value, unit)} vs {fmt_value(limit, unit)}"
        )
    return Target(key, text, value, limit, unit, detail + cond)


def evaluate_targets(figures: list[Figure], accel: str, smp: int) -> list[Target]:
    """The issue's targets against this run's medians. The TCG ones are still compared
    under KVM, with a note, since a figure that is met under TCG is met under KVM too."""
    m = medians(figures)
    tcg = "" if accel == "tcg" else f" (target is stated for TCG; this run used {accel.upper()})"
    cores = "" if smp == 2 else f" (target is stated for 2 cores; this guest had {smp})"
    boot_ratio = ratio_of(m, "boot.ready", "boot.bare")
    boot_cond = ""
    if boot_ratio is not None and boot_ratio > 1.25:
        extra = m["boot.ready"] - 1.25 * m["boot.bare"]
        boot_cond = f"; boot to ready is {fmt_seconds(extra)} longer than 1.25 x bare boot"
    return [
        _target(
            "boot_ratio", "boot to ready <= 1.25 x bare boot", boot_ratio, 1.25, "x", boot_cond
        ),
        _target(
            "test_overhead",
            "per-test overhead median <= 150 ms under TCG",
            m.get("test.overhead"),
            0.150,
            "s",
            tcg,
        ),
        _target("image_cached", "cached image <= 100 ms", m.get("image.cached"), 0.100, "s", ""),
        _target("agent_cached", "cached agent <= 100 ms", m.get("agent.cached"), 0.100, "s", ""),
        _target(
            "suite_wall",
            "default suite <= 3 minutes under TCG on 2 cores",
            m.get("suite.wall"),
            180.0,
            "s",
            tcg + cores,
        ),
        _target(
            "suite_overhead",
            "harness overhead <= 10 % of the suite",
            ratio_of(m, "suite.overhead", "suite.wall"),
            0.10,
            "%",
            "",
        ),
    ]


#: Which profile explains which target.
TARGET_PROFILES = {
    "boot_ratio": ("boot", "ssh"),
    "test_overhead": ("test", "ssh"),
    "image_cached": ("image.cached",),
    "agent_cached": ("agent.cached",),
    "suite_wall": ("suite", "suite.tests", "suite.slowest"),
    "suite_overhead": ("suite", "suite.tests"),
}


# -- boot timelines ------------------------------------------------------------------------

_PRINTK = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")


def parse_printk(text: str) -> list[tuple[float, str]]:
    """(kernel clock seconds, message) for each timestamped line of dmesg or a console."""
    out = []
    for line in text.replace("\r", "").splitlines():
        m = _PRINTK.match(line.strip())
        if m:
            out.append((float(m.group(1)), m.group(2)))
    return out


def printk_time(text: str, needle: str) -> float | None:
    return next((t for t, msg in parse_printk(text) if needle in msg), None)


def line_time(lines: list[tuple[float, str]], needle: str) -> float | None:
    """Host time at which the first console line containing `needle` appeared."""
    return next((t for t, line in lines if needle in line), None)


@dataclass
class BootRecord:
    """One boot as recorded: host monotonic times, console line arrivals, kernel log."""

    kind: str  # "bare" or "ready"
    spawn: float
    end: float  # bare: its init's line seen; ready: SSH connected and token verified
    first_output: float | None = None
    qmp: float | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    uptime: float | None = None  # bare: the guest's uptime its init printed
    dmesg: str = ""  # ready: the kernel log read after the boot

    @property
    def total(self) -> float:
        return self.end - self.spawn


#: Boot marks in order, each with the label of the stage that ends at it. Every mark is
#: a host time (console line arrival, QMP greeting, SSH done): under TCG the guest's early
#: clock runs on lost jiffies and cannot be trusted to place kernel events on the host's.
BOOT_STAGES = {
    "bare": [
        ("qmp", "QEMU start (-> QMP greeting)"),
        ("first_output", "firmware, kernel load, early kernel (-> first console byte)"),
        ("init", "kernel init, initramfs unpack (-> trivial init's line)"),
    ],
    "ready": [
        ("qmp", "QEMU start (-> QMP greeting)"),
        ("first_output", "firmware, kernel load, early kernel (-> first console byte)"),
        ("init", "kernel init, initramfs unpack, /init mounts (-> 'init started')"),
        ("zram_on", "init: hugetlbfs, insmod, zram swap (-> 'zram swap on')"),
        ("ready", "init: network, dropbear listening (-> READY)"),
        ("ssh_ok", "harness: sees READY, SSH connect, auth, token check"),
    ],
}


def boot_marks(b: BootRecord) -> dict[str, float]:
    """Seconds from spawn to each mark that this boot shows."""
    marks: dict[str, float] = {}
    if b.qmp is not None:
        marks["qmp"] = b.qmp - b.spawn
    if b.first_output is not None:
        marks["first_output"] = b.first_output - b.spawn
    if b.kind == "bare":
        marks["init"] = b.end - b.spawn
        return marks
    for key, needle in (
        ("init", "uffd-harness: init started"),
        ("zram_on", "uffd-harness: zram swap"),
        ("ready", "uffd-harness: READY"),
    ):
        t = line_time(b.lines, needle)
        if t is not None:
            marks[key] = t - b.spawn
    marks["ssh_ok"] = b.end - b.spawn
    return marks


def boot_stages(b: BootRecord) -> dict[str, float]:
    """Duration of each stage (keyed by the mark it ends at); a missing mark merges its
    stage into the next one."""
    marks = boot_marks(b)
    out, prev = {}, 0.0
    for key, _ in BOOT_STAGES[b.kind]:
        if key in marks:
            out[key] = marks[key] - prev
            prev = marks[key]
    return out


def kernel_clock(b: BootRecord) -> float | None:
    """The guest's own clock when its init began: the ready kernel's 'Run /init' stamp,
    or the uptime the trivial init printed (a few ms later)."""
    if b.kind == "bare":
        return b.uptime
    return printk_time(b.dmesg, "Run /init as init process")


def boot_profile(boots: list[BootRecord]) -> list[ProfileRow]:
    """Median stage durations of the bare and the ready boots."""
    rows: list[ProfileRow] = []
    for kind in ("bare", "ready"):
        group = [b for b in boots if b.kind == kind]
        if not group:
            continue
        per = [boot_stages(b) for b in group]
        for key, label in BOOT_STAGES[kind]:
            values = [s[key] for s in per if key in s]
            if values:
                rows.append(ProfileRow(f"{kind}: {label}", median(values), f"n={len(values)}"))
        rows.append(ProfileRow(f"{kind}: total", median([b.total for b in group])))
        clocks = [c for b in group if (c := kernel_clock(b)) is not None]
        if clocks:
            rows.append(
                ProfileRow(
                    f"{kind}: (guest clock at /init; slow under TCG)",
                    median(clocks),
                    "not on the host timeline",
                )
            )
    return rows


def boot_difference(boots: list[BootRecord]) -> list[ProfileRow]:
    """Where the ready boot's extra time over the bare boot goes, by stage (medians)."""
    bare = [boot_stages(b) for b in boots if b.kind == "bare"]
    ready = [boot_stages(b) for b in boots if b.kind == "ready"]
    if not bare or not ready:
        return []

    def med(group: list[dict[str, float]], key: str) -> float:
        return median([s[key] for s in group if key in s]) or 0.0

    rows = [
        ProfileRow(f"ready - bare: {label.split(' (')[0]}", med(ready, key) - med(bare, key))
        for key, label in BOOT_STAGES["bare"]
    ]
    userspace = sum(med(ready, k) for k in ("zram_on", "ready"))
    rows.append(ProfileRow("ready only: init after 'init started' (to READY)", userspace))
    rows.append(ProfileRow("ready only: READY to token verified", med(ready, "ssh_ok")))
    total = median([b.total for b in boots if b.kind == "ready"]) or 0.0
    total -= median([b.total for b in boots if b.kind == "bare"]) or 0.0
    rows.append(ProfileRow("ready - bare: total (difference of medians)", total))
    return rows


# -- pytest timings -------------------------------------------------------------------------


def ssh_kind(cmd: str) -> str:
    if cmd.startswith("/tmp/uffd-agent"):
        return "agent"
    if cmd.startswith("dmesg -c"):
        return "dmesg"
    if cmd.startswith("cat >"):
        return "push"
    return "other"


def _ssh_total(test: dict, kind: str) -> float:
    return sum(s["seconds"] for s in test.get("ssh", []) if s["kind"] == kind)


def time_parts(test: dict) -> dict[str, float]:
    """One test's wall time split into parts that add up to it (the last is the rest).

    `test` is one record of the timing plugin: wall (start, end), phase durations,
    time in the makereport and logreport hooks, SSH commands by kind, the agent's own
    duration.
    """
    wall = test["end"] - test["start"]
    phases, agent = test.get("phases", {}), test.get("agent_s") or 0.0
    agent_ssh, dmesg = _ssh_total(test, "agent"), _ssh_total(test, "dmesg")
    parts = {
        "agent's own duration": agent,
        "agent exec: SSH channel, process start/exit in guest": agent_ssh - agent,
        "test body in Python (verdict, known issues, repro line)": phases.get("call", 0.0)
        - agent_ssh,
        "fixtures: setup": phases.get("setup", 0.0) - test.get("guest_start", 0.0),
        "fixtures: teardown (no_stray_qemu /proc scan)": phases.get("teardown", 0.0)
        - test.get("guest_stop", 0.0),
        "plugin: `dmesg -c` over SSH": dmesg,
        "plugin: console slice and crash parse": sum(test.get("makereport", {}).values()) - dmesg,
        "results files rewritten (JSON, JUnit, KCIDB)": sum(test.get("logreport", {}).values()),
        "guest boot / stop inside the test": test.get("guest_start", 0.0)
        + test.get("guest_stop", 0.0),
    }
    parts["pytest itself (the rest)"] = wall - sum(parts.values())
    return parts


def overhead_of(test: dict) -> float:
    return test["end"] - test["start"] - (test.get("agent_s") or 0.0)


def steady_tests(tests: list[dict]) -> list[dict]:
    """The tests that neither boot the session's guest (the first) nor stop it (the last)."""
    return tests[1:-1] if len(tests) > 2 else []


def overhead_profile(tests: list[dict], with_sums: bool = False) -> list[ProfileRow]:
    """Median of each part of a test's time; with_sums notes each part's total too."""
    per = [time_parts(t) for t in tests]
    if not per:
        return []

    def note(values: list[float]) -> str:
        return f"sum {sum(values):.2f} s over {len(values)} tests" if with_sums else ""

    rows = []
    for key in per[0]:
        values = [p[key] for p in per]
        rows.append(ProfileRow(key, median(values), note(values)))
    over = overheads(tests)
    rows.append(ProfileRow("overhead (wall - agent's own)", median(over), note(over)))
    return rows


def overheads(tests: list[dict]) -> list[float]:
    return [overhead_of(t) for t in tests]


def slowest_agents(tests: list[dict], n: int = 8) -> list[ProfileRow]:
    """The tests whose agent ran longest, and the share of all agent time they took."""
    timed_tests = [t for t in tests if t.get("agent_s")]
    total = sum(t["agent_s"] for t in timed_tests)
    ranked = sorted(timed_tests, key=lambda t: -t["agent_s"])[:n]
    rows = [ProfileRow(t["name"], t["agent_s"]) for t in ranked]
    if ranked and total:
        share = sum(t["agent_s"] for t in ranked) / total
        rows.append(
            ProfileRow(
                f"these {len(ranked)} of {len(timed_tests)} tests",
                None,
                f"{share * 100:.0f} % of all agent time",
            )
        )
    return rows


def suite_breakdown(timing: dict, spawn: float, exit_: float) -> list[ProfileRow]:
    """The suite's wall time, spawn to exit, in parts that add up to it."""
    tests = timing.get("tests", [])
    session = timing.get("session", {})
    if not tests or "start" not in session:
        return [ProfileRow("wall (no per-test timing recorded)", exit_ - spawn)]
    first, last = tests[0]["start"], tests[-1]["end"]
    total = {
        kind: sum(_ssh_total(t, kind) for t in tests)
        for kind in ("agent", "dmesg", "push", "other")
    }
    agent_own = sum(t.get("agent_s") or 0.0 for t in tests)
    boots = sum(t.get("guest_start", 0.0) for t in tests)
    stops = sum(t.get("guest_stop", 0.0) for t in tests)
    rows = [
        ProfileRow("python start, imports, plugins", session["start"] - spawn),
        ProfileRow("collection (agent build check, `uffd-agent list`)", first - session["start"]),
        ProfileRow(f"guest boots ({timing.get('boots', 0)}, to token verified)", boots),
        ProfileRow("agent pushes", total["push"]),
        ProfileRow("agents' own durations", agent_own, f"{len(tests)} tests"),
        ProfileRow("agent exec overhead (SSH, process start in guest)", total["agent"] - agent_own),
        ProfileRow("`dmesg -c` after boot and after each test", total["dmesg"]),
        ProfileRow("other SSH commands", total["other"]),
        ProfileRow("guest stops", stops),
    ]
    accounted = sum(r.seconds or 0.0 for r in rows[2:])
    rows.append(
        ProfileRow("pytest, fixtures, console slices, results files", (last - first) - accounted)
    )
    rows.append(ProfileRow("session end and exit", exit_ - last))
    rows.append(ProfileRow("wall", exit_ - spawn))
    return rows


# -- cProfile summaries -------------------------------------------------------------------

_StatKey = tuple[str, int, str]


def _short(key: _StatKey) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    marker = "/harness/"
    if marker in filename:
        return f"harness/{filename.split(marker, 1)[1]}:{line} {func}"
    return f"{Path(filename).parent.name}/{Path(filename).name} {func}"


def top_functions(
    raw: dict[_StatKey, tuple], limit: int = 12, min_share: float = 0.04
) -> list[ProfileRow]:
    """Where a profiled harness call spends its time, two levels deep, from a pstats
    table ({(file, line, func): (cc, ncalls, tottime, cumtime, {caller: edge})}).

    The root is the costliest harness function; below it come its callees, and their
    callees when they are harness code, each with the time spent through that edge.
    """

    def ours(key: _StatKey) -> bool:
        return "/harness/" in key[0] and not key[0].endswith("bench.py")

    def children(parent: _StatKey) -> list[tuple[_StatKey, float, int]]:
        out = [(k, v[4][parent][3], v[4][parent][1]) for k, v in raw.items() if parent in v[4]]
        return sorted(out, key=lambda c: -c[1])

    candidates = [k for k in raw if ours(k)]
    if not candidates:
        return []
    root = max(candidates, key=lambda k: raw[k][3])
    total = raw[root][3]
    rows = [ProfileRow(_short(root), total, "total under cProfile")]
    for child, cum, calls in children(root):
        if cum < min_share * total:
            continue
        rows.append(ProfileRow(f"  {_short(child)}", cum, f"{calls} calls"))
        if ours(child):
            rows += [
                ProfileRow(f"    {_short(g)}", gcum, f"{gcalls} calls")
                for g, gcum, gcalls in children(child)
                if gcum >= min_share * total
            ]
    return rows[:limit]


# -- agent results -------------------------------------------------------------------------


def cheapest_case(results: list[dict]) -> tuple[str, str] | None:
    """The passing (workload, mem) with the shortest own duration; ties go by name."""
    passing = [
        r
        for r in results
        if r.get("status") == "pass" and isinstance(r.get(AGENT_DURATION), (int, float))
    ]
    if not passing:
        return None
    best = min(passing, key=lambda r: (r[AGENT_DURATION], r["workload"], r["mem"]))
    return best["workload"], best["mem"]


def stress_rows(result: dict) -> list[dict[str, Any]]:
    """Faults per second and latency percentiles (us) per fault kind from a `stress`
    result: from its `rates` block (faults_per_s and latency_us by kind) when present,
    else from the fault counts over its own duration and the overall latency summary."""
    rates = result.get("rates") or {}
    faults = result.get("faults") or {}
    per_s = rates.get("faults_per_s") or {}
    seconds = rates.get("seconds") or result.get(AGENT_DURATION) or 0.0
    lat = rates.get("latency_us") or {}
    rows = []
    for kind in FAULT_KINDS:
        count, rate = faults.get(kind), per_s.get(kind)
        if rate is None and count is not None and seconds > 0:
            rate = count / seconds
        if count is None and rate is None:
            continue
        kind_lat = lat.get(kind) or {}
        row = {"kind": kind, "faults": count, "faults_per_s": rate}
        rows.append(row | {p: kind_lat.get(p) for p in ("p50", "p99", "max")})
    overall = result.get("latency_us") or {}
    if not lat and "p50" in overall:
        rows.append(
            {"kind": "all", "faults": overall.get("samples"), "faults_per_s": None}
            | {p: overall.get(p) for p in ("p50", "p99", "max")}
        )
    return rows


# -- output ------------------------------------------------------------------------------


def _stats_cells(f: Figure) -> list[str]:
    s = f.stats
    if s is None:
        return ["0", "-", "-", "-"]
    return [str(s.n), fmt_seconds(s.min), fmt_seconds(s.median), fmt_seconds(s.max)]


def render_figures(figures: list[Figure]) -> list[str]:
    width = max([len(f.label) for f in figures] + [11])
    out = [f"{'measurement':<{width}}  {'n':>3}  {'min':>9}  {'median':>9}  {'max':>9}"]
    for f in figures:
        n, lo, mid, hi = _stats_cells(f)
        line = f"{f.label:<{width}}  {n:>3}  {lo:>9}  {mid:>9}  {hi:>9}"
        if f.error:
            line += f"  error: {f.error.splitlines()[0][:120]}"
        out.append(line.rstrip())
    return out


def render_profile(title: str, rows: list[ProfileRow]) -> list[str]:
    if not rows:
        return []
    width = max(len(r.label) for r in rows)
    out = [f"{title}:"]
    for r in rows:
        out.append(f"  {r.label:<{width}}  {fmt_seconds(r.seconds):>9}  {r.note}".rstrip())
    return out


PROFILE_TITLES = {
    "boot": "boot stages, median seconds (marks from the console and the kernel log)",
    "boot.diff": "boot to ready minus bare boot, by stage (medians)",
    "ssh": "SSH costs on a ready guest (medians)",
    "test": "per-test time, median of each part over the measured tests",
    "image.cached": "cached image lookup under cProfile (cumulative)",
    "agent.cached": "cached agent lookup under cProfile (cumulative)",
    "suite": "suite wall time, spawn to exit",
    "suite.tests": "suite, per test: median of each part, and its sum over all tests",
    "suite.slowest": "suite: the slowest agent runs (their own durations)",
}


def render_stress(stress: dict[str, Any]) -> list[str]:
    out = ["fault round trip (agent `stress` workload):"]
    if not stress.get("available"):
        return [*out, f"  not available: {stress.get('reason', 'not measured')}"]
    out.append(
        f"  {'mem':<10} {'kind':<8} {'faults':>8} {'faults/s':>9} "
        f"{'p50 us':>9} {'p99 us':>9} {'max us':>9}"
    )
    for mem, entry in stress.get("mems", {}).items():
        if entry.get("error"):
            out.append(f"  {mem:<10} error: {entry['error']}")
            continue
        for r in entry.get("rows", []):
            out.append(
                f"  {mem:<10} {r['kind']:<8} {_num(r.get('faults'), 0):>8} "
                f"{_num(r.get('faults_per_s'), 1):>9} {_num(r.get('p50'), 0):>9} "
                f"{_num(r.get('p99'), 0):>9} {_num(r.get('max'), 0):>9}"
            )
        reason = entry.get("reason")
        out.append(f"  {'':<10} ({entry.get('status')}{': ' + reason if reason else ''})")
    return out


def _num(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render(report: BenchReport) -> str:
    meta = report.meta
    out = [
        f"uffd-harness bench: {meta.get('release')} under {str(meta.get('accel')).upper()} "
        f"(-cpu {meta.get('cpu')}, {meta.get('smp')} CPUs, {meta.get('mem_mb')} MiB, "
        f"hugepages {meta.get('hugepages')})",
        f"host: {meta.get('host_cpus')} CPUs; load average {meta.get('load_start')} at start, "
        f"{meta.get('load_end')} at end; --runs {meta.get('runs')}",
        *(f"suite outcomes: {c}" for c in meta.get("suite_counts", [])),
        "",
        *render_figures(report.figures),
        "",
        "ratios:",
    ]
    for r in report.ratios:
        out.append(f"  {r.label:<40} {fmt_value(r.value, 'x')}")
    out += ["", "targets:"]
    for t in report.targets:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[t.met]
        out.append(f"  [{mark}] {t.text}: {t.detail}")
    missed = [t for t in report.targets if t.met is False]
    shown: list[str] = []
    for t in missed:
        keys = list(TARGET_PROFILES.get(t.key, ()))
        if t.key == "boot_ratio":
            keys.insert(1, "boot.diff")
        shown += [k for k in keys if k not in shown and report.profiles.get(k)]
    if shown:
        out += ["", "where the time goes (for the missed targets):"]
        for key in shown:
            out += render_profile(PROFILE_TITLES.get(key, key), report.profiles[key])
    out += ["", *render_stress(report.stress)]
    if report.errors:
        out += ["", "errors:", *(f"  {e}" for e in report.errors)]
    return "\n".join(out) + "\n"


def report_json(report: BenchReport) -> dict[str, Any]:
    return {
        "meta": report.meta,
        "figures": {
            f.key: {
                "label": f.label,
                "unit": "s",
                "samples": f.samples,
                "stats": asdict(f.stats) if f.stats else None,
                "error": f.error or None,
            }
            for f in report.figures
        },
        "ratios": {r.key: {"label": r.label, "value": r.value} for r in report.ratios},
        "targets": {
            t.key: {
                "text": t.text,
                "value": t.value,
                "limit": t.limit,
                "unit": t.unit,
                "met": t.met,
                "detail": t.detail,
            }
            for t in report.targets
        },
        "profiles": {
            k: [{"label": r.label, "seconds": r.seconds, "note": r.note} for r in rows]
            for k, rows in report.profiles.items()
        },
        "stress": report.stress,
        "errors": report.errors,
    }


# =========================================================================================
# Measuring part: builds, guests and pytest runs; only numbers come out.
# =========================================================================================

Say = Callable[[str, str], None]


class PytestTimer:
    """Per-test timings inside the bench's own pytest runs: wall time per test, each
    phase, the hooks after it, every SSH command by kind, guest starts and stops.

    Loaded with `-p harness.bench` and TIMING_ENV naming the JSON file to write.
    """

    def __init__(self, path: Path):
        self.path = path
        self.session: dict[str, float] = {}
        self.tests: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.boots = 0
        self._in_guest_start = False
        self._patch()

    def _patch(self) -> None:
        # Wrapping the methods is the only way to see inside a test without changing the
        # code under measurement; the wrappers cost microseconds.
        from . import guest, ssh

        timer = self
        run, start, stop = ssh.SshSession.run, guest.Guest.start, guest.Guest.stop

        def timed_run(self_: Any, cmd: str, *a: Any, **kw: Any) -> Any:
            t0 = time.monotonic()
            try:
                return run(self_, cmd, *a, **kw)
            finally:
                timer._ssh(cmd, time.monotonic() - t0)

        def timed_start(self_: Any) -> Any:
            t0 = time.monotonic()
            timer._in_guest_start = True
            try:
                return start(self_)
            finally:
                timer._in_guest_start = False
                timer.boots += 1
                timer._add("guest_start", time.monotonic() - t0)

        def timed_stop(self_: Any) -> Any:
            t0 = time.monotonic()
            try:
                return stop(self_)
            finally:
                if not timer._in_guest_start:
                    timer._add("guest_stop", time.monotonic() - t0)

        ssh.SshSession.run = timed_run  # type: ignore[method-assign]
        guest.Guest.start = timed_start  # type: ignore[method-assign]
        guest.Guest.stop = timed_stop  # type: ignore[method-assign]

    def _add(self, key: str, seconds: float) -> None:
        if self.current is not None:
            self.current[key] = self.current.get(key, 0.0) + seconds

    def _ssh(self, cmd: str, seconds: float) -> None:
        if self.current is not None and not self._in_guest_start:
            self.current["ssh"].append({"kind": ssh_kind(cmd), "seconds": seconds})

    @hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: Any) -> None:
        self.session["start"] = time.monotonic()

    @hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
        self.current = {
            "name": item.nodeid.split("::", 1)[-1],
            "start": time.monotonic(),
            "phases": {},
            "makereport": {},
            "logreport": {},
            "ssh": [],
        }
        self.tests.append(self.current)
        try:
            return (yield)
        finally:
            self.current["end"] = time.monotonic()
            self.current = None

    # tryfirst makes these the outermost wrappers, so they include the harness plugin's
    # own work after the test (console slice, dmesg, crash parse, results files).
    @hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        t0 = time.monotonic()
        try:
            return (yield)
        finally:
            if self.current is not None:
                self.current["makereport"][call.when] = time.monotonic() - t0

    @hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: Any) -> Any:
        t0 = time.monotonic()
        try:
            return (yield)
        finally:
            if self.current is not None:
                self.current["logreport"][report.when] = time.monotonic() - t0
                self.current["phases"][report.when] = report.duration
                for key, value in report.user_properties:
                    if key == "agent" and isinstance(value, dict):
                        self.current["agent_s"] = value.get(AGENT_DURATION)

    @hookimpl(trylast=True)
    def pytest_unconfigure(self, config: Any) -> None:
        self.session["finish"] = time.monotonic()
        data = {"session": self.session, "tests": self.tests, "boots": self.boots}
        self.path.write_text(json.dumps(data, indent=1) + "\n")


def pytest_configure(config: Any) -> None:
    """Registers PytestTimer when this module is loaded as a plugin for the bench."""
    path = os.environ.get(TIMING_ENV)
    if path and not config.pluginmanager.has_plugin("uffd-bench-timer"):
        config.pluginmanager.register(PytestTimer(Path(path)), "uffd-bench-timer")


class ConsoleWatch:
    """Notes when each console line first appears (host monotonic time), from a thread,
    so boot stages are timed without touching the boot itself."""

    def __init__(self, path: Path, poll: float = 0.01):
        self.path = path
        self.poll = poll
        self.first_output: float | None = None
        self.lines: list[tuple[float, str]] = []
        self._pos = 0
        self._partial = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ConsoleWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self._read()

    def _read(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._pos)
                new = f.read()
        except FileNotFoundError:
            return
        if not new:
            return
        now = time.monotonic()
        self._pos += len(new)
        if self.first_output is None and new.strip():
            self.first_output = now
        *complete, self._partial = (self._partial + new).split(b"\n")
        self.lines += [(now, raw.decode("utf-8", "replace").rstrip("\r")) for raw in complete]


@contextlib.contextmanager
def cache_home(path: Path) -> Iterator[Path]:
    """XDG_CACHE_HOME pointed at `path` for the duration (an empty cache for cold builds)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old


def timed(fn: Callable[[], object]) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def profiled(fn: Callable[[], object]) -> list[ProfileRow]:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(fn)
    return top_functions(pstats.Stats(prof).stats)  # type: ignore[attr-defined]


@dataclass
class Bench:
    """One bench run: its options, where its logs go, and what it found."""

    settings: dict[str, Any]
    runs: int
    tests: int
    suite_runs: int
    sections: tuple[str, ...]
    workdir: Path
    case: tuple[str, str] | None
    stress_seconds: int
    stress_threads: int
    say: Say
    figures: list[Figure] = field(default_factory=list)
    profiles: dict[str, list[ProfileRow]] = field(default_factory=dict)
    stress: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    agent_names: dict[str, list[str]] | None = None
    ssh_rows: list[ProfileRow] = field(default_factory=list)

    def figure(self, key: str, label: str) -> Figure:
        f = Figure(key, label)
        self.figures.append(f)
        return f

    def sample(self, f: Figure, fn: Callable[[], float]) -> None:
        """Add one sample; a failure is kept on the figure and stops its further runs."""
        if f.error:
            return
        try:
            f.samples.append(fn())
        except Exception as e:  # noqa: BLE001 - any failure is a figure's error, reported
            f.error = f"{type(e).__name__}: {e}"
            self.errors.append(f"{f.label}: {f.error}")

    @functools.cached_property
    def template(self) -> Guest:
        """A Guest with this run's settings, never started: kernel, accelerator, spec."""
        from .guest import guest_from_settings

        return guest_from_settings(self.settings)


# -- builds ------------------------------------------------------------------------------


def measure_builds(b: Bench) -> None:
    from .agent.build import build_agent
    from .image import build_image
    from .kernel import pvh_vmlinux
    from .kernel_build import find_modules_tree

    kernel = b.template.kernel
    modules = find_modules_tree(kernel)
    b.say("builds", f"{b.runs} cold and cached builds of the image, the agent and the vmlinux")

    def cold(fn: Callable[[Path], object]) -> Callable[[], float]:
        def one() -> float:
            empty = Path(tempfile.mkdtemp(prefix="cold-", dir=b.workdir))
            try:
                with cache_home(empty):
                    return timed(lambda: fn(empty))
            finally:
                shutil.rmtree(empty, ignore_errors=True)

        return one

    warm = b.workdir / "warm-cache"
    jobs: list[tuple[str, str, Callable[[Path], object]]] = [
        ("image", "image build", lambda _: build_image(modules)),
        ("agent", "agent build", lambda d: build_agent(cache_dir=d / "agent")),
        ("vmlinux", "PVH vmlinux extract", lambda d: pvh_vmlinux(kernel, d)),
    ]
    for key, label, fn in jobs:
        f_cold = b.figure(f"{key}.cold", f"{label}, cold (empty cache)")
        for _ in range(b.runs):
            b.sample(f_cold, cold(fn))
        f_hot = b.figure(f"{key}.cached", f"{label}, cached")
        with cache_home(warm):
            b.sample(f_hot, lambda fn=fn: timed(lambda: fn(warm)))  # fills the warm cache
            f_hot.samples.clear()
            for _ in range(b.runs):
                b.sample(f_hot, lambda fn=fn: timed(lambda: fn(warm)))
            if not f_hot.error:
                b.profiles[f"{key}.cached"] = profiled(lambda fn=fn: fn(warm))
        b.say(
            "builds",
            f"{key}: cold {fmt_seconds(median(f_cold.samples))}, "
            f"cached {fmt_seconds(median(f_hot.samples))} (medians)",
        )
    shutil.rmtree(warm, ignore_errors=True)


# -- boots -------------------------------------------------------------------------------

BARE_INIT = b"""#!/bin/sh
# uffd-harness bench: the trivial init. One line on the console, then off.
/bin/busybox mount -t proc proc /proc
read up idle < /proc/uptime
echo "uffd-bench: bare init up $up"
/bin/busybox reboot -f
"""


def bare_initramfs(path: Path) -> Path:
    """busybox, a shell link and the trivial init: nothing of the harness's own image."""
    from . import cpio
    from .image import DEFAULT_RECIPE, load_recipe

    busybox = next(p for p in load_recipe(DEFAULT_RECIPE).binaries if p.name == "busybox")
    entries = [
        cpio.directory("bin"),
        cpio.directory("dev"),
        cpio.directory("proc"),
        cpio.chardev("dev/console", 5, 1),
        cpio.file("bin/busybox", busybox.read_bytes(), 0o755),
        cpio.symlink("bin/sh", "/bin/busybox"),
        cpio.file("init", BARE_INIT, 0o755),
    ]
    with path.open("wb") as out:
        cpio.write(out, entries)
    return path


def bare_boot(template: Guest, kernel_file: Path, initrd: Path, log: Path) -> BootRecord:
    """Same kernel file, accelerator, CPUs, memory and command line as a real boot; only
    the initramfs differs. QEMU exits on the init's `reboot -f` (-no-reboot)."""
    from .console import ConsoleLog
    from .guest import BOOT_TIMEOUT
    from .qemu import LaunchFiles, QemuProcess, build_argv, free_port

    sockdir = Path(tempfile.mkdtemp(prefix="uffd-bench-"))  # socket paths must stay short
    try:
        files = LaunchFiles(kernel_file, initrd, log, sockdir / "qmp.sock")
        argv = build_argv(
            template.spec, files, free_port(), secrets.token_hex(16), template.backing
        )
        with ConsoleWatch(log) as watch:
            spawn = time.monotonic()
            with QemuProcess(argv, sockdir / "qemu.stderr", files.qmp_socket) as qemu:
                qemu.connect_qmp()  # as a real boot does, so both pay for it
                qmp = time.monotonic()
                found = ConsoleLog(log).wait_for(
                    [BARE_LINE], BOOT_TIMEOUT[template.spec.accel], keep_going=qemu.alive
                )
                end = time.monotonic()
                if found is None:
                    raise RuntimeError(
                        f"the trivial init printed nothing (QEMU {qemu.stderr_text() or 'ok'}); "
                        f"console: {ConsoleLog(log).tail(5)}"
                    )
        m = BARE_LINE.search(found.text.encode())
        return BootRecord(
            "bare",
            spawn,
            end,
            first_output=watch.first_output,
            qmp=qmp,
            lines=watch.lines,
            uptime=float(m.group(1)) if m else None,
        )
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


class _Marks:
    """A Guest progress callback that notes when each phase reports."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, phase: str, message: str) -> None:
        now = time.monotonic()
        if phase == "image":
            self.times["spawn"] = now  # the last image message comes just before the spawn
        elif phase == "boot" and message.startswith("QEMU pid"):
            self.times["qmp"] = now  # reported once QMP has answered


def ready_boot(b: Bench, log: Path) -> tuple[BootRecord, Guest]:
    """Boot to SSH ready with the token verified; the caller stops the guest."""
    from .guest import guest_from_settings

    marks = _Marks()
    guest = guest_from_settings(b.settings, console_log=log, progress=marks)
    t_call = time.monotonic()
    try:
        with ConsoleWatch(log) as watch:
            guest.start()
            end = time.monotonic()
    except BaseException:
        guest.stop()
        guest.cleanup()
        raise
    rec = BootRecord(
        "ready",
        marks.times.get("spawn", t_call),
        end,
        first_output=watch.first_output,
        qmp=marks.times.get("qmp"),
        lines=watch.lines,
    )
    return rec, guest


def kernel_log(guest: Guest, rec: BootRecord) -> None:
    """The kernel log of the boot, read after it (the ring buffer holds every level)."""
    rec.dmesg = guest.run("dmesg", timeout=60).stdout.decode(errors="replace")


def ssh_costs(guest: Guest, runs: int) -> dict[str, list[float]]:
    """A fresh SSH connection (handshake, auth) and a trivial command's round trip."""
    from .ssh import connect
    from .sshkeys import client_key

    assert guest.image
    key, _ = client_key()
    out: dict[str, list[float]] = {"connect": [], "true": []}
    for _ in range(runs):
        t0 = time.monotonic()
        session = connect(guest.port, guest.image.host_key, key, timeout=60.0)
        out["connect"].append(time.monotonic() - t0)
        session.close()
        out["true"].append(timed(lambda: guest.run("true", timeout=30)))
    return out


def measure_boots(b: Bench) -> None:
    from .kernel import pvh_vmlinux

    template = b.template
    kernel_file = pvh_vmlinux(template.kernel, _cache_root()) or template.kernel.path
    logs = b.workdir / "boots"
    logs.mkdir(parents=True, exist_ok=True)
    initrd = bare_initramfs(logs / "bare-initramfs.cpio")
    f_bare = b.figure("boot.bare", "bare boot (spawn -> trivial init's line)")
    f_ready = b.figure("boot.ready", "boot to ready (spawn -> SSH up, token verified)")
    records: list[BootRecord] = []
    ssh: dict[str, list[float]] = {"connect": [], "true": []}
    # Interleaved, so load from other work on the machine falls on both alike.
    for i in range(1, b.runs + 1):
        b.sample(f_bare, lambda i=i: _bare(b, template, kernel_file, initrd, logs, i, records))
        b.sample(f_ready, lambda i=i: _ready(b, logs, i, records, ssh))
        b.say(
            "boot",
            f"run {i}/{b.runs}: bare {fmt_seconds(_last(f_bare))}, "
            f"ready {fmt_seconds(_last(f_ready))}",
        )
    b.profiles["boot"] = boot_profile(records)
    b.profiles["boot.diff"] = boot_difference(records)
    b.profiles["ssh"] = [
        ProfileRow("fresh SSH connection: TCP, key exchange, auth", median(ssh["connect"])),
        ProfileRow("SSH command round trip (`true`)", median(ssh["true"])),
        *b.ssh_rows,
    ]
    b.meta["boots"] = [_boot_json(r) for r in records]


def _last(f: Figure) -> float | None:
    return f.samples[-1] if f.samples else None


def _cache_root() -> Path:
    from .cache import cache_root

    return cache_root()


def _bare(
    b: Bench, template: Guest, kernel_file: Path, initrd: Path, logs: Path, i: int, out: list
) -> float:
    rec = bare_boot(template, kernel_file, initrd, logs / f"bare-{i}.console.log")
    out.append(rec)
    return rec.total


def _ready(b: Bench, logs: Path, i: int, out: list, ssh: dict[str, list[float]]) -> float:
    rec, guest = ready_boot(b, logs / f"ready-{i}.console.log")
    try:
        out.append(rec)
        kernel_log(guest, rec)
        for k, v in ssh_costs(guest, 2).items():
            ssh[k] += v
        if i == 1:
            agent_work(b, guest)
    finally:
        guest.stop()
        guest.cleanup()
    return rec.total


def _boot_json(r: BootRecord) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "total": r.total,
        "marks": boot_marks(r),
        "kernel_clock_at_init": kernel_clock(r),
    }


# -- the agent on a ready guest -----------------------------------------------------------


def agent_list(binary: Path) -> dict[str, list[str]]:
    """Workload -> memory types, from `uffd-agent list` run on the host (it is static)."""
    out = subprocess.run([str(binary), "list"], capture_output=True, text=True, check=True)
    return {w["name"]: list(w["mem"]) for w in json.loads(out.stdout)}


def agent_work(b: Bench, guest: Guest) -> None:
    """On the first ready guest: the push, the cheapest workload, and the stress figures."""
    from .agent.build import build_agent
    from .agent_session import AgentSession

    try:
        binary = build_agent()
        b.agent_names = agent_list(binary)
        t0 = time.monotonic()
        session = AgentSession(guest, binary)
        push = time.monotonic() - t0
    except Exception as e:  # noqa: BLE001 - reported; the other figures go on
        b.errors.append(f"agent on a ready guest: {type(e).__name__}: {e}")
        return
    size = binary.stat().st_size // 1024
    b.ssh_rows.append(ProfileRow(f"agent push ({size} KiB, sha256 checked in guest)", push))
    for label, cmd in (
        ("round trip, one exec (`/bin/busybox true`)", "/bin/busybox true"),
        ("round trip, the agent's exec (`uffd-agent list`)", "/tmp/uffd-agent list >/dev/null"),
        ("round trip, `dmesg -c` as the plugin runs it", "dmesg -c >/dev/null"),
    ):
        times = [timed(lambda cmd=cmd: guest.run(cmd, timeout=60)) for _ in range(3)]
        b.ssh_rows.append(ProfileRow(label, median(times), "n=3"))
    if b.case is None and "overhead" in b.sections:
        b.case = _probe_cheapest(b, session)
    if "stress" in b.sections:
        b.stress = measure_stress(b, session)


def _probe_cheapest(b: Bench, session: Any) -> tuple[str, str] | None:
    timeout = 900.0
    try:
        res = session.call(["suite", "--mem", "anon"], timeout)
    except Exception as e:  # noqa: BLE001
        b.errors.append(f"finding the cheapest workload: {type(e).__name__}: {e}")
        return None
    case = cheapest_case(res.data if isinstance(res.data, list) else [])
    if case:
        b.say("agent", f"cheapest workload on anon: {case[0]} --mem {case[1]}")
    return case


def measure_stress(b: Bench, session: Any) -> dict[str, Any]:
    names = b.agent_names or {}
    if "stress" not in names:
        return {"available": False, "reason": "the agent has no stress workload"}
    out: dict[str, Any] = {"available": True, "seconds": b.stress_seconds, "mems": {}}
    extra = ["--threads", str(b.stress_threads), "--seconds", str(b.stress_seconds)]
    for mem in STRESS_MEMS:
        if mem not in names["stress"]:
            out["mems"][mem] = {"error": f"stress does not support --mem {mem}"}
            continue
        b.say("stress", f"stress --mem {mem} {' '.join(extra)}")
        try:
            res = session.run("stress", mem, b.stress_seconds * 3 + 120.0, extra)
        except Exception as e:  # noqa: BLE001
            out["mems"][mem] = {"error": f"{type(e).__name__}: {e}"}
            continue
        data = res.data
        out["mems"][mem] = {
            "status": data.get("status"),
            "reason": data.get("reason", ""),
            "rows": stress_rows(data),
            "result": data,
        }
    return out


# -- pytest runs -------------------------------------------------------------------------


def guest_flags(template: Guest, settings: dict[str, Any]) -> list[str]:
    """The run's guest, spelled out, so every pytest run boots the very same guest."""
    spec = template.spec
    flags = ["--kernel", str(template.kernel.path), "--accel", spec.accel]
    flags += ["--smp", str(spec.smp), "--mem", f"{spec.mem_mb}M"]
    flags += ["--hugepages", str(settings["hugepages"])]
    if spec.cpu:
        flags += ["--cpu", spec.cpu]
    if spec.host_hugepages:
        flags.append("--host-hugepages")
    if settings.get("guest_timeout"):
        flags += ["--guest-timeout", str(settings["guest_timeout"])]
    return flags


def _die_with_parent() -> None:
    import ctypes
    import signal

    # A bench killed outright must not leave its pytest (and so its guest) running.
    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def run_pytest(argv: list[str], cwd: Path, timing: Path, log: Path) -> tuple[float, float, int]:
    """(spawn, exit) host times and the exit code of `python -m pytest ARGV`."""
    from . import REPO_ROOT

    env = dict(os.environ)
    env[TIMING_ENV] = str(timing)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.bench", "-p", "no:cacheprovider", *argv]
    with log.open("wb") as out:
        spawn = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()  # pytest then stops its guest on the way out
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return spawn, time.monotonic(), code


OVERHEAD_CONFTEST = '''"""Generated by uffd-harness bench: the guest suite's per-test fixture."""
from tests.guest.conftest import no_stray_qemu  # noqa: F401
'''

OVERHEAD_TEST = '''"""Generated by uffd-harness bench: the suite's test function, one case
repeated. The first case boots the guest and the last one stops it; the bench measures
the others."""
import pytest

from tests.guest.test_agent import test_agent  # noqa: F401

pytestmark = pytest.mark.guest
CASE = ({workload!r}, {mem!r})
COUNT = {count}


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        ids = [f"{{CASE[0]}}-{{CASE[1]}}-{{i:02d}}" for i in range(COUNT)]
        metafunc.parametrize("case", [CASE] * COUNT, ids=ids)
'''


def measure_overhead(b: Bench) -> None:
    f = b.figure("test.overhead", "per-test overhead (wall - agent's own)")
    f_agent = b.figure("test.agent", "  the agent's own duration in those tests")
    if b.case is None:
        f.error = "no cheapest workload found (see errors), give --workload WORKLOAD:MEM"
        return
    workload, mem = b.case
    f.label = f"per-test overhead, {workload} --mem {mem} (wall - agent's own)"
    d = b.workdir / "overhead"
    d.mkdir(parents=True, exist_ok=True)
    (d / "pytest.ini").write_text("[pytest]\n")
    (d / "conftest.py").write_text(OVERHEAD_CONFTEST)
    test = OVERHEAD_TEST.format(workload=workload, mem=mem, count=b.tests + 2)
    (d / "test_overhead.py").write_text(test)
    argv = ["test_overhead.py", "-q", "--results", str(d / "results")]
    argv += guest_flags(b.template, b.settings)
    b.say("overhead", f"{b.tests} + 2 tests in one guest under pytest (log: {d / 'pytest.log'})")
    timing = d / "timing.json"
    _, _, code = run_pytest(argv, d, timing, d / "pytest.log")
    tests = _load_tests(timing)
    measured = steady_tests(tests)
    if code != 0 or not measured:
        f.error = f"pytest exited {code}; see {d / 'pytest.log'}"
        b.errors.append(f"per-test overhead: {f.error}")
    f.samples = overheads(measured)
    f_agent.samples = [t.get("agent_s") or 0.0 for t in measured]
    b.profiles["test"] = overhead_profile(measured)
    b.meta["overhead_tests"] = tests


def _load_tests(timing: Path) -> list[dict]:
    try:
        return json.loads(timing.read_text()).get("tests", [])
    except (OSError, ValueError):
        return []


def measure_suite(b: Bench) -> None:
    from . import REPO_ROOT

    suite = REPO_ROOT / "tests" / "guest" / "test_agent.py"
    f_wall = b.figure("suite.wall", "suite wall (pytest tests/guest/test_agent.py)")
    f_agent = b.figure("suite.agent", "  agents' own durations, summed")
    f_over = b.figure("suite.overhead", "  harness overhead (wall - agents' own)")
    f_each = b.figure("suite.test_overhead", "  per-test overhead within the suite")
    flags = guest_flags(b.template, b.settings)
    for i in range(1, b.suite_runs + 1):
        d = b.workdir / f"suite-{i}"
        d.mkdir(parents=True, exist_ok=True)
        b.say("suite", f"run {i}/{b.suite_runs} (log: {d / 'pytest.log'})")
        timing = d / "timing.json"
        argv = [str(suite), "-q", "--results", str(d / "results"), *flags]
        spawn, exit_, code = run_pytest(argv, REPO_ROOT, timing, d / "pytest.log")
        agent_s, summary = _suite_results(d / "results" / "results.json")
        if agent_s is None:
            f_wall.error = f"no results.json (pytest exited {code}); see {d / 'pytest.log'}"
            b.errors.append(f"suite: {f_wall.error}")
            continue
        f_wall.samples.append(exit_ - spawn)
        f_agent.samples.append(agent_s)
        f_over.samples.append(exit_ - spawn - agent_s)
        b.meta.setdefault("suite_counts", []).append(summary)
        try:
            timing_data = json.loads(timing.read_text())
        except (OSError, ValueError):
            timing_data = {}
        b.profiles["suite"] = suite_breakdown(timing_data, spawn, exit_)
        steady = steady_tests(timing_data.get("tests", []))
        f_each.samples += overheads(steady)
        b.profiles["suite.tests"] = overhead_profile(steady, with_sums=True)
        b.profiles["suite.slowest"] = slowest_agents(timing_data.get("tests", []))
        b.say("suite", f"{exit_ - spawn:.1f} s wall, {agent_s:.1f} s in the agent; {summary}")


def _suite_results(path: Path) -> tuple[float | None, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, ""
    total = sum((t.get("agent") or {}).get(AGENT_DURATION) or 0.0 for t in data.get("tests", []))
    counts = ", ".join(f"{n} {k}" for k, n in data.get("counts", {}).items() if n)
    return total, counts


# -- the command -------------------------------------------------------------------------


def host_meta(b: Bench) -> dict[str, Any]:
    from . import __version__

    template = b.template
    spec = template.spec
    from .results import qemu_version

    qemu = qemu_version()
    return {
        "harness": __version__,
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
    from . import UsageError
    from .cli import settings_from_args
    from .results import atomic_write, new_run_id

    # Absolute: the pytest runs work in other directories.
    workdir = (args.results or Path("results") / f"bench-{new_run_id()}").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    b = Bench(
        settings=settings_from_args(args),
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
    if "overhead" in b.sections and b.case is None and "boot" not in b.sections:
        raise UsageError("--only without boot needs --workload WORKLOAD:MEM for the overhead")
    report = run_bench(b)
    text = render(report)
    print(text, end="")
    data = json.dumps(report_json(report), indent=1) + "\n"
    atomic_write(workdir / "bench.json", data)
    (workdir / "bench.txt").write_text(text)
    if args.json:
        atomic_write(args.json, data)
    print(f"\nfigures and logs: {workdir}", file=sys.stderr)
    return 1 if report.errors else 0


def add_bench_parser(subparsers: Any) -> None:
    """Register `uffd-harness bench` on the CLI's subparsers."""
    from .cli import add_guest_args

    p = subparsers.add_parser(
        "bench",
        help="measure boot, per-test overhead, caches, the suite and fault round trips",
        description="Measure, in one run on this machine: bare boot and boot to ready, "
        "per-test overhead, cold and cached image and agent builds, the uffd suite's wall "
        "time, and the agent's stress workload; print min/median/max, ratios and where we "
        "stand against the targets (with a breakdown of where the time goes when missed).",
    )
    add_guest_args(p)
    p.add_argument("--runs", type=_positive, default=5, help="runs of each cheap figure (5)")
    p.add_argument(
        "--tests", type=_positive, default=20, help="tests measured for per-test overhead (20)"
    )
    p.add_argument("--suite-runs", type=_positive, default=1, help="runs of the suite (1)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    p.add_argument(
        "--results",
        type=Path,
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
    p.add_argument("--stress-seconds", type=_positive, default=10, help="per memory type (10)")
    p.add_argument("--stress-threads", type=_positive, default=4, help="stress threads (4)")
    p.set_defaults(func=cmd_bench)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return n
