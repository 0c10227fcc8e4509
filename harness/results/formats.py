"""The files nightly systems keep, as pure functions of the records: JSON, JUnit, KCIDB,
and the summary table."""

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from harness.results.record import TestRecord, case_key, count_line, counts, repeated_cases

KCIDB_ORIGIN = "uffd_harness"


def to_json(records: list[TestRecord], meta: dict) -> str:
    # One record per line: rewritten after every test, so indenting every agent check
    # would make it several times larger and slower to write; still greppable.
    tests = ",\n  ".join(json.dumps(asdict(r), separators=(",", ":")) for r in records)
    head_data: dict = {"meta": meta, "counts": counts(records)}
    if repeated := repeated_cases(records):
        head_data["cases"] = repeated  # --repeat: outcomes per case, and which are flaky
    head = json.dumps(head_data, separators=(",", ":"))
    return f'{head[:-1]},\n "tests": [\n  {tests}\n ]\n}}\n'


#: The JUnit test case that carries the kernel crashes found outside every test.
OUTSIDE_TESTS = "kernel console outside the tests"


def to_junit(
    records: list[TestRecord],
    suite: str = "uffd-harness",
    session_crashes: list[dict] | None = None,
) -> str:
    """One test case per record, plus one failed case for the kernel crashes found outside
    every test (a CI that reads only JUnit must still see why the run failed)."""
    c = counts(records)
    extra = 1 if session_crashes else 0
    root = ET.Element("testsuites")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(records) + extra),
        failures=str(c["failed"] + c["xpassed"] + extra),
        errors=str(c["error"]),
        skipped=str(c["skipped"] + c["xfailed"]),
        time=f"{sum(r.duration for r in records):.3f}",
    )
    for r in records:
        case = ET.SubElement(ts, "testcase", classname=suite, name=r.name, time=f"{r.duration:.3f}")
        detail = "\n".join([r.reason] + [f"{c['title']}\n{c.get('text', '')}" for c in r.crashes])
        if r.outcome in ("failed", "xpassed"):
            msg = r.reason or (r.crashes[0]["title"] if r.crashes else r.outcome)
            ET.SubElement(case, "failure", message=msg[:500]).text = detail
        elif r.outcome == "error":
            ET.SubElement(case, "error", message=r.reason[:500]).text = detail
        elif r.outcome in ("skipped", "xfailed"):
            ET.SubElement(case, "skipped", message=f"{r.outcome}: {r.reason}"[:500])
        if r.reproduce:
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="reproduce", value=r.reproduce)
    if session_crashes:
        case = ET.SubElement(ts, "testcase", classname=suite, name=OUTSIDE_TESTS, time="0.000")
        titles = "; ".join(dict.fromkeys(c["title"] for c in session_crashes))
        ET.SubElement(case, "failure", message=f"kernel crash: {titles}"[:500]).text = "\n\n".join(
            f"{c['title']} ({crash_place(c)}; {c.get('console', '')})\n{c.get('text', '')}"
            for c in session_crashes
        )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


_KCIDB_STATUS = {
    "passed": "PASS",
    "failed": "FAIL",
    "skipped": "SKIP",
    "xfailed": "FAIL",
    "xpassed": "PASS",
    "error": "ERROR",
}


def to_kcidb(records: list[TestRecord], meta: dict, run_id: str) -> str:
    """KCIDB v4 JSON: one checkout and one build (the kernel under test), a test per record.

    A known kernel bug is still a FAIL for KCIDB (it is a real failure of that kernel);
    `misc.expected` says it was expected.
    """
    kernel = meta.get("kernel", {})
    checkout_id = f"{KCIDB_ORIGIN}:{run_id}"
    build_id = f"{KCIDB_ORIGIN}:{run_id}:{kernel.get('release', 'unknown')}"
    tests = []
    for i, r in enumerate(records):
        test = {
            "id": f"{build_id}:{i}",
            "origin": KCIDB_ORIGIN,
            "build_id": build_id,
            "path": "uffd."
            + r.name.replace("[", ".").replace("]", "").replace("-", "_").replace(":", "."),
            "status": _KCIDB_STATUS[r.outcome],
            "duration": round(r.duration, 3),
            "environment": {"comment": meta.get("environment", "")},
            "misc": {
                "outcome": r.outcome,
                "reason": r.reason,
                "expected": r.outcome in ("xfailed",),
                "crashes": [c["title"] for c in r.crashes],
            },
        }
        if r.start_time:
            test["start_time"] = r.start_time
        tests.append(test)
    doc = {
        "version": {"major": 4, "minor": 3},
        "checkouts": [
            {
                "id": checkout_id,
                "origin": KCIDB_ORIGIN,
                "valid": True,
                "misc": {"harness": meta.get("harness", {})},
            }
        ],
        "builds": [
            {
                "id": build_id,
                "origin": KCIDB_ORIGIN,
                "checkout_id": checkout_id,
                "architecture": "x86_64",
                "valid": True,
                "misc": {
                    "kernel_version": kernel.get("version", ""),
                    "config_sha256": kernel.get("config_sha256", ""),
                },
            }
        ],
        "tests": tests,
    }
    return json.dumps(doc, indent=2) + "\n"


_CELL = {
    "passed": "pass",
    "failed": "FAIL",
    "skipped": "skip",
    "xfailed": "xfail",
    "xpassed": "XPASS",
    "error": "ERROR",
}


_FAILING_OUTCOMES = ("failed", "error", "xpassed", "xfailed")


def _repeated_cell(rep: dict) -> str:
    """A table cell for a case run several times: `pass x3`, or `FLAKY 2/3` (passes/runs)."""
    if rep["verdict"] != "flaky":
        return f"{_CELL[rep['verdict']]} x{rep['runs']}"
    return f"FLAKY {rep.get('passed', 0)}/{rep['runs']}"


def crash_place(crash: dict) -> str:
    """`between tests (after test_a, before test_b)`: where a crash that belongs to no test
    was found (a session crash record's phase and neighbours)."""
    around = [f"{k} {crash[k]}" for k in ("after", "before", "during") if crash.get(k)]
    return crash.get("phase", "at boot") + (f" ({', '.join(around)})" if around else "")


def _cell(r: TestRecord) -> tuple[str, str]:
    """(row, column) of a record in the summary table: an agent case's workload and memory
    type, or a kernel selftest case's `binary:case` and memory type; ("", "") for others."""
    if r.selftest:
        # Under the agent's name for the memory type, so both kinds of rows share columns
        # (6.1's `hugetlb` is the agent's hugetlb-private).
        st = r.selftest
        return f"{st.get('binary')}:{st.get('case')}", st.get("agent_mem") or st.get("mem", "-")
    a = r.agent or {}
    return a.get("workload", ""), a.get("mem", "")


def summary_text(
    records: list[TestRecord],
    root: Path | None = None,
    session_crashes: list[dict] | None = None,
    channel: str = "ssh",
) -> str:
    """Workload x memory type table of agent cases (and kernel selftest cases), then other
    tests, crashes, and files.

    A record is an agent case when its `agent` field names a workload and a memory type.
    `channel` is the hardware fingerprint's guest_channel: "ssh" or "console: <why>".
    """
    cases: dict[str, dict[str, str]] = {}
    mems: list[str] = []
    others = []
    repeated = repeated_cases(records)
    for r in records:
        row, mem = _cell(r)
        if row and mem:
            rep = repeated.get(case_key(r.name, r.agent))
            cases.setdefault(row, {})[mem] = _CELL[r.outcome] if not rep else _repeated_cell(rep)
            if mem not in mems:
                mems.append(mem)
        else:
            others.append(r)
    lines = []
    if cases:
        width = max(len(w) for w in cases) + 2
        cols = [max(len(m), 5, *(len(row.get(m, "")) for row in cases.values())) + 2 for m in mems]
        lines.append(
            "workload".ljust(width) + "".join(m.ljust(c) for m, c in zip(mems, cols, strict=True))
        )
        for w, row in cases.items():
            lines.append(
                w.ljust(width)
                + "".join(row.get(m, "-").ljust(c) for m, c in zip(mems, cols, strict=True))
            )
        lines.append("")
    for r in others:
        lines.append(f"{_CELL[r.outcome]:6} {r.name}")
    problems = [r for r in records if r.outcome in ("failed", "xpassed", "error")]
    if problems:
        lines += ["", "failures:"]
        for r in problems:
            lines.append(f"  {r.name}: {r.reason}")
            if r.reproduce:
                lines.append(f"    reproduce: {r.reproduce}")
    crashes = [(r.name, c["title"]) for r in records for c in r.crashes]
    if crashes:
        lines += ["", "kernel crashes:"] + [f"  {title}  ({name})" for name, title in crashes]
    if session_crashes:
        lines += ["", "kernel crashes outside any test:"]
        lines += [
            f"  {c['title']}  ({crash_place(c)}; {c.get('console', '')})" for c in session_crashes
        ]
    flaky = {k: v for k, v in repeated.items() if v["verdict"] == "flaky"}
    if flaky:
        lines += ["", "flaky (outcomes differ between runs; never a pass):"]
        lines += [
            f"  {k}: {v['runs']} runs: "
            + ", ".join(
                f"{v[o]} {o}" for o in ("passed", *_FAILING_OUTCOMES, "skipped") if v.get(o)
            )
            for k, v in flaky.items()
        ]
    expected = [r for r in records if r.outcome == "xfailed"]
    if expected:
        lines += ["", "known kernel bugs (xfailed):"]
        lines += [f"  {r.name}: {r.reason}" for r in expected]
    lines += ["", count_line(records)]
    if channel.startswith("console"):
        lines.append(f"guest driven over its console channel (ttyS1), not SSH: {channel[9:]}")
    if root:
        lines.append(f"files: {root} (results.json, junit.xml, kcidb.json, console logs, logs/)")
    return "\n".join(lines).rstrip() + "\n"
