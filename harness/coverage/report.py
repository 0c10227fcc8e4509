"""The coverage report: per file, the related lines the suite executed and the ones it
did not (with their function, and the reviewed reason when one is listed), and per
workload, which related lines it reaches and which only it reaches.

Pure: gcovr's JSON in, tables and a JSON summary out (harness.coverage.gcda runs gcovr).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources

import yaml

from harness import HarnessError
from harness.coverage.related import related_lines
from harness.kernel.gcov import RELATED_FILES, RELATED_HEADERS, WHOLE_FILES

#: (file, line) -> count, as gcovr reported it.
Counts = dict[str, dict[int, int]]
#: The targets of issue 11, in percent of related lines executed.
TARGET_WHOLE, TARGET_RELATED = 95.0, 90.0


@dataclass(frozen=True)
class Unreachable:
    """A reviewed reason why a function's related lines cannot run in a guest here."""

    file: str
    function: str
    why: str


@dataclass
class Line:
    line: int
    function: str
    text: str
    why: str = ""  # the reviewed reason, when the function is listed


@dataclass
class FileReport:
    path: str
    rule: str  # "whole": every line counts; "related": the userfaultfd-related lines
    lines: int = 0
    covered: int = 0
    branches: int = 0
    branches_taken: int = 0
    uncovered: list[Line] = field(default_factory=list)
    #: Per function: [related executable lines, executed].
    functions: dict[str, list[int]] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.lines if self.lines else 100.0

    @property
    def unexplained(self) -> list[Line]:
        return [u for u in self.uncovered if not u.why]


def load_unreachable(text: str | None = None) -> list[Unreachable]:
    """The reviewed list (harness/coverage/unreachable.yaml), checked entry by entry."""
    if text is None:
        text = resources.files("harness.coverage").joinpath("unreachable.yaml").read_text()
    data = yaml.safe_load(text) or []
    out = []
    for i, e in enumerate(data if isinstance(data, list) else [None]):
        if not isinstance(e, dict) or set(e) != {"file", "function", "why"}:
            raise HarnessError(f"unreachable.yaml entry {i + 1}: expected keys file, function, why")
        if not all(isinstance(v, str) and v.strip() for v in e.values()):
            raise HarnessError(f"unreachable.yaml entry {i + 1}: empty or non-text value")
        out.append(Unreachable(e["file"], e["function"], " ".join(e["why"].split())))
    return out


def counts_of(gcovr_json: dict) -> tuple[Counts, dict[str, dict[int, tuple[int, int]]]]:
    """Line counts and (branches, taken) per line, per file, from gcovr's JSON (a line
    gcovr lists more than once, e.g. for each inlined copy, sums its counts)."""
    counts: Counts = {}
    branches: dict[str, dict[int, tuple[int, int]]] = {}
    for f in gcovr_json.get("files", []):
        lines, br = counts.setdefault(f["file"], {}), branches.setdefault(f["file"], {})
        for ln in f.get("lines", []):
            if ln.get("gcovr/noncode"):
                continue
            n = ln["line_number"]
            lines[n] = lines.get(n, 0) + int(ln.get("count", 0))
            b = ln.get("branches") or []
            total, taken = br.get(n, (0, 0))
            br[n] = (total + len(b), taken + sum(1 for x in b if x.get("count", 0) > 0))
    return counts, branches


def rule_of(path: str) -> str:
    return "whole" if path in WHOLE_FILES or path in RELATED_HEADERS else "related"


def related_map(source: Callable[[str], str]) -> dict[str, dict[int, str]]:
    """Per file, its related lines and their functions (source(path) gives its text)."""
    return {
        p: related_lines(source(p), whole=rule_of(p) == "whole")
        for p in (*WHOLE_FILES, *RELATED_FILES, *RELATED_HEADERS)
    }


def file_reports(
    counts: Counts,
    branches: dict[str, dict[int, tuple[int, int]]],
    related: dict[str, dict[int, str]],
    source: Callable[[str], str],
    unreachable: Iterable[Unreachable],
) -> list[FileReport]:
    why = {(u.file, u.function): u.why for u in unreachable}
    reports = []
    for path, rel in related.items():
        r = FileReport(path, rule_of(path))
        lines = counts.get(path, {})
        text = source(path).splitlines()
        for n in sorted(set(rel) & set(lines)):
            r.lines += 1
            per = r.functions.setdefault(rel[n], [0, 0])
            per[0] += 1
            per[1] += lines[n] > 0
            total, taken = branches.get(path, {}).get(n, (0, 0))
            r.branches += total
            r.branches_taken += taken
            if lines[n] > 0:
                r.covered += 1
            else:
                src = text[n - 1].strip() if n <= len(text) else ""
                r.uncovered.append(Line(n, rel[n], src, why.get((path, rel[n]), "")))
        reports.append(r)
    return reports


def stale_entries(
    unreachable: Iterable[Unreachable], related: dict[str, dict[int, str]]
) -> list[Unreachable]:
    """Listed functions that have no related line in this tree (renamed, or gone)."""
    return [u for u in unreachable if u.function not in set(related.get(u.file, {}).values())]


def covered_related(counts: Counts, related: dict[str, dict[int, str]]) -> set[tuple[str, int]]:
    return {
        (p, n) for p, rel in related.items() for n, c in counts.get(p, {}).items() if c and n in rel
    }


@dataclass
class WorkloadRow:
    workload: str
    covered: int
    only_here: list[tuple[str, int, str]]  # (file, line, function) no other workload runs


def attribution(
    per_workload: dict[str, Counts], related: dict[str, dict[int, str]]
) -> list[WorkloadRow]:
    sets = {w: covered_related(c, related) for w, c in per_workload.items()}
    rows = []
    for w, s in sorted(sets.items()):
        others = set().union(*(o for k, o in sets.items() if k != w))
        only = sorted(s - others)
        rows.append(WorkloadRow(w, len(s), [(p, n, related[p][n]) for p, n in only]))
    return rows


def ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def _target(r: FileReport) -> float:
    return TARGET_WHOLE if r.rule == "whole" else TARGET_RELATED


def format_table(reports: list[FileReport]) -> str:
    """The per-file table, then every unexplained uncovered line with its function."""
    out = [
        f"{'file':34} {'rule':7} {'lines':>6} {'run':>6} {'%':>6} {'branches':>12} "
        f"{'listed':>6} target"
    ]
    for r in reports:
        listed = len(r.uncovered) - len(r.unexplained)
        branches = f"{r.branches_taken}/{r.branches}"
        verdict = "met" if r.percent >= _target(r) else "MISSED"
        out.append(
            f"{r.path:34} {r.rule:7} {r.lines:6} {r.covered:6} {r.percent:6.1f} "
            f"{branches:>12} {listed:6} {verdict} (>= {_target(r):.0f} %)"
        )
    for rule in ("whole", "related"):
        group = [r for r in reports if r.rule == rule]
        lines, covered = sum(r.lines for r in group), sum(r.covered for r in group)
        pct = 100.0 * covered / lines if lines else 100.0
        out.append(f"{'all ' + rule + ' files':34} {rule:7} {lines:6} {covered:6} {pct:6.1f}")
    for r in reports:
        if r.unexplained:
            out.append(f"\nnot executed, no reason listed: {r.path}")
            by_function: dict[str, list[Line]] = {}
            for u in r.unexplained:
                by_function.setdefault(u.function, []).append(u)
            for fn, lines in by_function.items():
                first = lines[0].text[:60]
                out.append(f"  {fn}: {ranges([u.line for u in lines])}  ({first} ...)")
    listed = [(r.path, u) for r in reports for u in r.uncovered if u.why]
    if listed:
        out.append(
            "\nnot executed, listed as unreachable here (harness/coverage/unreachable.yaml):"
        )
        seen = set()
        for path, u in listed:
            if (path, u.function) not in seen:
                seen.add((path, u.function))
                n = sum(1 for p, x in listed if p == path and x.function == u.function)
                out.append(f"  {path}:{u.function} ({n} lines): {u.why}")
    return "\n".join(out) + "\n"


def format_attribution(rows: list[WorkloadRow]) -> str:
    out = [f"{'workload':24} {'related lines':>13} {'only here':>9}"]
    for r in sorted(rows, key=lambda r: -r.covered):
        out.append(f"{r.workload:24} {r.covered:13} {len(r.only_here):9}")
    for r in rows:
        if r.only_here:
            out.append(f"\nonly {r.workload} runs:")
            by_function: dict[tuple[str, str], list[int]] = {}
            for path, n, fn in r.only_here:
                by_function.setdefault((path, fn), []).append(n)
            for (path, fn), lines in by_function.items():
                out.append(f"  {path} {fn}: {ranges(lines)}")
    return "\n".join(out) + "\n"


def summary(reports: list[FileReport], rows: list[WorkloadRow] | None, **meta: object) -> dict:
    return {
        **meta,
        "files": [
            {**{k: v for k, v in asdict(r).items() if k != "uncovered"}, "percent": r.percent}
            | {"uncovered": [asdict(u) for u in r.uncovered]}
            for r in reports
        ],
        "workloads": [asdict(r) for r in rows] if rows is not None else None,
    }
