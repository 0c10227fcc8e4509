"""Where the bench's time goes: boot stages from console marks, each test's wall time in
parts that add up to it, the suite's wall in parts, and cProfile call trees.

Pure: it reads recorded marks, timing-plugin records and pstats tables, and starts nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.bench.report import ProfileRow, median
from harness.events import BootLine, BootStart, Event, GuestReady, QmpReady
from harness.kernel.printk import timestamped

# -- boot timelines ------------------------------------------------------------------------


def printk_time(text: str, needle: str) -> float | None:
    return next((t for t, msg in timestamped(text) if needle in msg), None)


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


def ready_record(events: list[Event]) -> BootRecord:
    """A boot to SSH ready from its guest's events: the first QEMU spawn, the QMP greeting,
    each console line as it was read (the first non-blank one is the first output), and
    the token verified."""
    lines = [(e.t, e.text) for e in events if isinstance(e, BootLine)]
    return BootRecord(
        "ready",
        next(e.t for e in events if isinstance(e, BootStart)),
        next(e.t for e in events if isinstance(e, GuestReady)),
        first_output=next((t for t, text in lines if text.strip()), None),
        qmp=next((e.t for e in events if isinstance(e, QmpReady)), None),
        lines=lines,
    )


#: Boot marks in order, each with the label of the stage that ends at it. Every mark is
#: a host time (console line arrival, QMP greeting, SSH done): under TCG the guest's early
#: clock runs on lost jiffies and cannot be trusted to place kernel events on the host's.
BOOT_STAGES = {
    "bare": [
        ("qmp", "QEMU start (-> QMP greeting)"),
        ("first_output", "firmware, kernel load, early kernel (-> first console output)"),
        ("init", "kernel init, initramfs unpack (-> trivial init's line)"),
    ],
    "ready": [
        ("qmp", "QEMU start (-> QMP greeting)"),
        ("first_output", "firmware, kernel load, early kernel (-> first console output)"),
        ("init", "kernel init, initramfs unpack, /init mounts (-> 'init started')"),
        ("swap_on", "init: hugetlbfs, insmod, swap (-> 'swap: ...')"),
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
        ("swap_on", "uffd-harness: swap: "),
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
    userspace = sum(med(ready, k) for k in ("swap_on", "ready"))
    rows.append(ProfileRow("ready only: init after 'init started' (to READY)", userspace))
    rows.append(ProfileRow("ready only: READY to token verified", med(ready, "ssh_ok")))
    total = median([b.total for b in boots if b.kind == "ready"]) or 0.0
    total -= median([b.total for b in boots if b.kind == "bare"]) or 0.0
    rows.append(ProfileRow("ready - bare: total (difference of medians)", total))
    return rows


# -- pytest timings -------------------------------------------------------------------------


def ssh_kind(cmd: str) -> str:
    """A guest command's kind in the timings; pushes are an event of their own ("push")."""
    if cmd.startswith("/tmp/uffd-agent"):
        return "agent"
    if cmd.startswith("dmesg -c"):
        return "dmesg"
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
# The bench's own modules: the lambdas through which it calls the code it profiles cost as
# much as that code, so they would otherwise be taken for the root.
_BENCH_FILE = re.compile(r"/harness/bench/\w+\.py$")


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
        return "/harness/" in key[0] and not _BENCH_FILE.search(key[0])

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
