"""What changed between two runs: per case, new failures, fixes, new skips, lost cases, crash
titles; the verdict a nightly job acts on. Pure: results.json data in, a Comparison out."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.results.record import case_key, merged_outcome

#: Outcomes that fail a run (an XPASS is a known bug that no longer shows; a flaky case,
#: run several times with `--repeat`, failed at least once).
FAILING = ("failed", "error", "xpassed", "flaky")

#: Kinds of change that make the new run a regression, in report order.
REGRESSIONS = ("new-failure", "known-bug-changed", "new-skip", "missing", "new-crash")
#: Kinds that are reported but are not regressions.
NEWS = ("fixed", "known-bug-gone", "now-runs", "new-case", "still-failing", "crash-gone")

_HEADINGS = {
    "new-failure": "new failures",
    "known-bug-changed": "known bugs that changed state (update the known-issues list)",
    "new-skip": "new skips (coverage lost)",
    "missing": "cases no longer run",
    "new-crash": "new kernel crash titles",
    "fixed": "fixed",
    "known-bug-gone": "known bugs no longer seen",
    "now-runs": "cases that ran where they skipped",
    "new-case": "new cases",
    "still-failing": "still failing",
    "crash-gone": "crash titles gone",
}


@dataclass(frozen=True)
class Change:
    kind: str
    case: str  # the test's name, or a crash title for the crash kinds
    base: str  # the outcome in the base run ("" when absent)
    new: str
    detail: str = ""


@dataclass
class Comparison:
    base_kernel: str
    new_kernel: str
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.kind in REGRESSIONS]

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]


def _failed_checks(test: dict) -> str:
    checks = (test.get("agent") or {}).get("checks") or []
    bad = [f"{c['name']} ({c.get('detail', '')})" for c in checks if not c.get("ok", True)]
    return "; ".join(bad) or test.get("reason", "")


def _crash_titles(data: dict) -> dict[str, str]:
    """Crash title -> where it was seen (a test's name, or the session phase)."""
    titles = {}
    for t in data.get("tests", []):
        for c in t.get("crashes") or []:
            titles.setdefault(c["title"], t["name"])
    for c in data.get("meta", {}).get("session_crashes") or []:
        titles.setdefault(c["title"], c.get("phase", "outside any test"))
    return titles


def _kernel(data: dict) -> str:
    k = data.get("meta", {}).get("kernel") or {}
    return str(k.get("release") or k.get("path") or "unknown kernel")


def _case_change(name: str, base: dict | None, new: dict | None) -> Change | None:
    b = base["outcome"] if base else ""
    n = new["outcome"] if new else ""
    if new is None:
        return Change("missing", name, b, "", "in the base run, not in the new one")
    if base is None:
        if n in FAILING:
            return Change("new-failure", name, "", n, _failed_checks(new))
        return Change("new-case", name, "", n, new.get("reason", ""))
    if b == n:
        return Change("still-failing", name, b, n, _failed_checks(new)) if n in FAILING else None
    if b == "xfailed" and n == "xpassed":
        return Change("known-bug-changed", name, b, n, new.get("reason", ""))
    if n in FAILING:
        return Change("new-failure", name, b, n, _failed_checks(new))
    if b in FAILING:
        return Change("fixed", name, b, n)
    if b == "xfailed":
        return Change("known-bug-gone", name, b, n, new.get("reason", ""))
    if n == "skipped":
        return Change("new-skip", name, b, n, new.get("reason", ""))
    if b == "skipped":
        return Change("now-runs", name, b, n)
    # passed -> xfailed: the case fails now, in the way the known-issues list expects.
    return Change("known-bug-changed", name, b, n, new.get("reason", ""))


def _cases(data: dict) -> dict[str, dict]:
    """Case -> its record; a case run several times (--repeat) gets the merged outcome
    (flaky when the runs differ) and the record of a failing run, if any."""
    runs: dict[str, list[dict]] = {}
    for t in data.get("tests", []):
        runs.setdefault(case_key(t["name"], t.get("agent")), []).append(t)
    merged = {}
    for key, tests in runs.items():
        shown = next((t for t in tests if t["outcome"] in FAILING), tests[-1])
        merged[key] = {**shown, "outcome": merged_outcome([t["outcome"] for t in tests])}
    return merged


def compare(base: dict, new: dict) -> Comparison:
    """Two results.json documents -> every change from base to new."""
    out = Comparison(_kernel(base), _kernel(new))
    old, now = _cases(base), _cases(new)
    for name in [*old, *(n for n in now if n not in old)]:
        change = _case_change(name, old.get(name), now.get(name))
        if change:
            out.changes.append(change)
        else:
            out.unchanged += 1
    old_titles, new_titles = _crash_titles(base), _crash_titles(new)
    out.changes += [
        Change("new-crash", title, "", "crash", f"in {where}")
        for title, where in new_titles.items()
        if title not in old_titles
    ]
    out.changes += [
        Change("crash-gone", title, "crash", "", f"was in {where}")
        for title, where in old_titles.items()
        if title not in new_titles
    ]
    return out


def verdict_line(c: Comparison) -> str:
    """The first line of the report: REGRESSION or NO REGRESSION, and the counts."""
    kernels = f"(base {c.base_kernel} -> new {c.new_kernel})"
    counts = ", ".join(
        f"{len(c.of(k))} {_HEADINGS[k].split(' (')[0]}" for k in (*REGRESSIONS, *NEWS) if c.of(k)
    )
    head = "REGRESSION" if c.regressions else "NO REGRESSION"
    return f"{head}: {counts or 'nothing changed'}; {c.unchanged} unchanged {kernels}"


def comparison_text(c: Comparison) -> str:
    lines = [verdict_line(c)]
    for kind in (*REGRESSIONS, *NEWS):
        changes = c.of(kind)
        if not changes:
            continue
        lines += ["", f"{_HEADINGS[kind]}:"]
        for ch in changes:
            move = f"{ch.base or '-'} -> {ch.new or '-'}"
            lines.append(f"  {ch.case}: {move}" + (f": {ch.detail}" if ch.detail else ""))
    return "\n".join(lines) + "\n"


def comparison_json(c: Comparison) -> dict:
    return {
        "regression": bool(c.regressions),
        "base_kernel": c.base_kernel,
        "new_kernel": c.new_kernel,
        "unchanged": c.unchanged,
        "changes": [ch.__dict__ for ch in c.changes],
    }


@dataclass
class CellComparison:
    name: str
    comparison: Comparison | None  # None: the cell has no results on one side
    note: str = ""
    regression: bool = False


@dataclass
class NightlyComparison:
    cells: list[CellComparison]

    @property
    def regression(self) -> bool:
        return any(c.regression for c in self.cells)


def _cell_results(root: Path, cell: dict) -> dict | None:
    path = root / str(cell.get("results") or cell["name"]) / "results.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def compare_nightly(base: dict, new: dict, base_root: Path, new_root: Path) -> NightlyComparison:
    """Two nightly indexes (index.json) -> each cell compared with the base's same cell. A
    cell the base had and the new run lacks, or whose results are gone, is a regression."""
    old = {c["name"]: c for c in base.get("cells", [])}
    out = []
    for cell in new.get("cells", []):
        name = cell["name"]
        now = _cell_results(new_root, cell)
        if now is None:
            why = cell.get("error") or f"no results (exit {cell.get('exit_code')})"
            out.append(CellComparison(name, None, f"not judged: {why}", regression=True))
        elif name not in old:
            out.append(CellComparison(name, None, "new cell: nothing to compare with"))
        elif (before := _cell_results(base_root, old[name])) is None:
            out.append(CellComparison(name, None, "the baseline has no results for it"))
        else:
            c = compare(before, now)
            out.append(CellComparison(name, c, regression=bool(c.regressions)))
    seen = {c["name"] for c in new.get("cells", [])}
    out += [
        CellComparison(name, None, "in the baseline, not run now", regression=True)
        for name in old
        if name not in seen
    ]
    return NightlyComparison(out)


def nightly_text(n: NightlyComparison) -> str:
    bad = [c for c in n.cells if c.regression]
    head = "REGRESSION" if bad else "NO REGRESSION"
    lines = [f"{head}: {len(bad)} of {len(n.cells)} cells regressed"]
    for c in n.cells:
        lines += ["", f"== {c.name} =="]
        if c.comparison:
            lines.append(comparison_text(c.comparison).rstrip())
        else:
            lines.append(("REGRESSION: " if c.regression else "") + c.note)
    return "\n".join(lines) + "\n"
