"""The bench's figures and what is said of them: statistics, ratios, targets against
their limits, the agent's stress rows, the table and the JSON.

Pure: numbers in, numbers and text out (tests/unit/test_bench.py runs it on figures
recorded from real runs).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_KINDS = ("missing", "wp", "minor")
#: The agent's JSON key for its own wall time.
AGENT_DURATION = "duration_s"


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
        out += _selftest_line(mem, entry.get("selftest"))
    return out


def _selftest_line(mem: str, st: dict[str, Any] | None) -> list[str]:
    """The kernel selftests' stress part beside the agent's (bench --kselftest-src)."""
    if st is None:
        return []
    if st.get("error"):
        return [f"  {mem:<10} selftest error: {st['error']}"]
    f = st.get("faults") or {}
    kinds = ", ".join(f"{k} {n}" for k, n in f.items() if n) or "no faults"
    bound = (
        ", a lower bound: the binary's other tests ran in that time"
        if st.get("lower_bound")
        else ""
    )
    return [
        f"  {mem:<10} selftest `{' '.join(st.get('argv', []))}`: {kinds} in {st.get('seconds')} s"
        f" = {st.get('faults_per_second')} faults/s (exit {st.get('exit_code')}{bound})"
    ]


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
