"""One self-contained HTML report of a run, or of a nightly's cells: the workload x memory
type grid, each failure with its failing checks, console excerpt and reproduce line, crashes
outside the tests, fault-latency bars, and a comparison with a baseline. No script, no
external resource: it opens offline, anywhere. Pure: records in, text out."""

import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from harness.results.formats import crash_place
from harness.results.record import TestRecord, case_key, count_line, merged_outcome

_CLASS = {
    "passed": ("pass", "pass"),
    "failed": ("FAIL", "fail"),
    "error": ("ERROR", "fail"),
    "xpassed": ("XPASS", "fail"),
    "skipped": ("skip", "skip"),
    "xfailed": ("xfail", "xfail"),
    "flaky": ("FLAKY", "flaky"),
}
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:1.6em}h3{font-size:1em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}
th{background:#f3f3f3}
td.pass{background:#d9f2d9}td.fail{background:#f8c9c9;font-weight:bold}
td.skip{background:#eee;color:#777}td.xfail{background:#fbe7b5}
td.flaky{background:#fcd3a8;font-weight:bold}td.none{color:#bbb}
td a{color:inherit}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.5em;overflow-x:auto;font-size:12px}
.verdict-bad{color:#b00;font-weight:bold}.verdict-good{color:#070;font-weight:bold}
svg text{font:11px monospace}
"""
#: Console lines shown per failure (the whole slice is in the results directory).
EXCERPT_LINES = 60


@dataclass
class Section:
    """One run's records: a whole report for `uffd-harness run`, one cell of a nightly."""

    title: str
    records: list[TestRecord]
    meta: dict = field(default_factory=dict)
    root: Path | None = None  # where its log slices are, relative paths resolved against it


def _anchor(section: str, key: str) -> str:
    return "f-" + "".join(ch if ch.isalnum() else "-" for ch in f"{section}-{key}")


def _grid(s: Section) -> str:
    runs: dict[str, list[TestRecord]] = {}
    for r in s.records:
        if (r.agent or {}).get("workload") and (r.agent or {}).get("mem"):
            runs.setdefault(case_key(r.name, r.agent), []).append(r)
    if not runs:
        return ""
    workloads = list(dict.fromkeys(k.split(":")[0] for k in runs))
    mems = list(dict.fromkeys(k.split(":")[1] for k in runs))
    rows = ["<tr><th>workload</th>" + "".join(f"<th>{escape(m)}</th>" for m in mems) + "</tr>"]
    for w in workloads:
        cells = []
        for m in mems:
            recs = runs.get(f"{w}:{m}")
            if not recs:
                cells.append('<td class="none">-</td>')
                continue
            outcome = merged_outcome([r.outcome for r in recs])
            label, css = _CLASS[outcome]
            if len(recs) > 1:
                label += f" {sum(r.outcome == 'passed' for r in recs)}/{len(recs)}"
            if css in ("fail", "flaky"):
                label = f'<a href="#{_anchor(s.title, f"{w}:{m}")}">{label}</a>'
            title = escape(next((r.reason for r in recs if r.reason), ""), quote=True)
            cells.append(f'<td class="{css}" title="{title}">{label}</td>')
        rows.append(f"<tr><th>{escape(w)}</th>{''.join(cells)}</tr>")
    return f'<table class="grid">{"".join(rows)}</table>'


def _excerpt(s: Section, r: TestRecord) -> str:
    if not (r.log_slice and s.root):
        return ""
    try:
        text = (s.root / r.log_slice).read_text(errors="replace").replace("\r", "")
    except OSError:
        return ""
    lines = text.splitlines()[-EXCERPT_LINES:]
    if not lines:
        return ""
    return f"<h3>console (last {len(lines)} lines)</h3><pre>{escape(chr(10).join(lines))}</pre>"


def _failures(s: Section) -> str:
    out = []
    for r in s.records:
        if r.outcome not in ("failed", "error", "xpassed"):
            continue
        key = case_key(r.name, r.agent)
        checks = [c for c in (r.agent or {}).get("checks", []) if not c.get("ok", True)]
        parts = [f'<h3 id="{_anchor(s.title, key)}">{escape(r.name)}: {r.outcome}</h3>']
        if r.reason:
            parts.append(f"<pre>{escape(r.reason[-3000:])}</pre>")
        if checks:
            rows = "".join(
                f"<tr><td>{escape(c['name'])}</td><td>{escape(str(c.get('detail', '')))}</td></tr>"
                for c in checks
            )
            parts.append(f"<table><tr><th>failed check</th><th>detail</th></tr>{rows}</table>")
        for c in r.crashes:
            parts.append(f"<p>kernel crash: <b>{escape(c['title'])}</b></p>")
        parts.append(_excerpt(s, r))
        if r.reproduce:
            parts.append(f"<p>reproduce:</p><pre>{escape(r.reproduce)}</pre>")
        out.append("".join(parts))
    return "<h2>Failures</h2>" + "".join(out) if out else ""


def _latency(s: Section) -> str:
    """p50 and p99 fault latency per case, as bars on a log scale (inline SVG)."""
    rows = []
    for r in s.records:
        lat = (r.agent or {}).get("latency_us") or {}
        if lat.get("samples") and lat.get("p50") and lat.get("p99"):
            rows.append((case_key(r.name, r.agent), float(lat["p50"]), float(lat["p99"])))
    if not rows:
        return ""
    top = math.log10(max(p99 for _, _, p99 in rows) * 1.5)
    width, label_w, bar_h = 900, 260, 14

    def x(us: float) -> float:
        return label_w + (width - label_w - 10) * max(0.0, math.log10(max(us, 1.0))) / top

    parts = []
    for i, (key, p50, p99) in enumerate(rows):
        y = 20 + i * (bar_h + 6)
        parts.append(f'<text x="0" y="{y + 11}">{escape(key)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{x(p99) - label_w:.1f}" height="{bar_h}" '
            f'fill="#f4b183"><title>p99 {p99:.1f} us</title></rect>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{x(p50) - label_w:.1f}" height="{bar_h - 6}" '
            f'fill="#4472c4"><title>p50 {p50:.1f} us</title></rect>'
        )
    height = 30 + len(rows) * (bar_h + 6)
    axis = "".join(
        f'<text x="{x(10**k):.0f}" y="12">{10**k:g}</text>' for k in range(0, int(top) + 1)
    )
    return (
        "<h2>Fault latency (us, log scale: blue p50, orange p99)</h2>"
        f'<svg width="{width}" height="{height}" role="img">{axis}{"".join(parts)}</svg>'
    )


def _section(s: Section) -> str:
    kernel = s.meta.get("kernel", {}).get("release", "unknown kernel")
    hw = s.meta.get("hardware", {})
    facts = [f"kernel <b>{escape(kernel)}</b>"]
    if hw:
        facts.append(f"accel {escape(str(hw.get('accel', '?')))}")
        facts.append(f"guest channel {escape(str(hw.get('guest_channel', 'ssh')))}")
    head = f"<h2>{escape(s.title)}</h2><p>{', '.join(facts)}; {escape(count_line(s.records))}</p>"
    others = [r for r in s.records if not (r.agent or {}).get("workload")]
    other_rows = "".join(
        f'<tr><td>{escape(r.name)}</td><td class="{_CLASS[r.outcome][1]}">'
        f"{_CLASS[r.outcome][0]}</td></tr>"
        for r in others
    )
    crashes = s.meta.get("session_crashes") or []
    crash_html = "".join(
        f"<p>kernel crash outside any test, {escape(crash_place(c))}: <b>{escape(c['title'])}</b>"
        "</p>"
        for c in crashes
    )
    return (
        head
        + _grid(s)
        + (f"<table>{other_rows}</table>" if other_rows else "")
        + crash_html
        + _failures(s)
        + _latency(s)
    )


def report_html(title: str, sections: list[Section], comparison: str = "") -> str:
    bad = any(
        r.outcome in ("failed", "error", "xpassed") for s in sections for r in s.records
    ) or any(s.meta.get("session_crashes") for s in sections)
    verdict = '<p class="verdict-bad">FAILED</p>' if bad else '<p class="verdict-good">PASSED</p>'
    compared = (
        f"<h2>Compared with the baseline</h2><pre>{escape(comparison)}</pre>" if comparison else ""
    )
    body = "".join(_section(s) for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{verdict}{compared}{body}</body></html>\n"
    )
