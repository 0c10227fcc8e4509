"""Run results: records per test and the files nightly systems keep (JSON, JUnit, KCIDB).

Every writer is a pure function of the records; RunDir only decides where they go and
writes atomically, after every test, so an interrupted run leaves valid files for what
finished.
"""

import datetime as dt
import json
import os
import platform
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.guest.qemu import qemu_version
from harness.host.cache import publish
from harness.host.cpuinfo import parse_cpuinfo
from harness.results.provenance import provenance

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
KCIDB_ORIGIN = "uffd_harness"


@dataclass
class TestRecord:
    __test__ = False  # not a pytest test class, despite the name

    name: str  # e.g. "agent[wp-basic-anon]"
    outcome: str  # one of OUTCOMES
    duration: float
    reason: str = ""
    agent: dict | None = None  # the agent's JSON object for this case
    crashes: list[dict] = field(default_factory=list)  # crashlog records (kind, title, text)
    log_slice: str | None = None  # console slice, relative to the run directory
    dmesg: str | None = None  # full kernel ring buffer written during the test
    reproduce: str | None = None  # a shell command that reruns exactly this case
    start_time: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} not in {OUTCOMES}")


def counts(records: list[TestRecord]) -> dict[str, int]:
    c = dict.fromkeys(OUTCOMES, 0)
    for r in records:
        c[r.outcome] += 1
    return c


def count_line(records: list[TestRecord]) -> str:
    """'N passed, N failed, N skipped, N xfailed' (+ xpassed/error only when non-zero)."""
    c = counts(records)
    parts = [f"{c[k]} {k}" for k in ("passed", "failed", "skipped", "xfailed")]
    parts += [f"{c[k]} {k}" for k in ("xpassed", "error") if c[k]]
    return ", ".join(parts)


def to_json(records: list[TestRecord], meta: dict) -> str:
    # One record per line: rewritten after every test, so indenting every agent check
    # would make it several times larger and slower to write; still greppable.
    tests = ",\n  ".join(json.dumps(asdict(r), separators=(",", ":")) for r in records)
    head = json.dumps({"meta": meta, "counts": counts(records)}, separators=(",", ":"))
    return f'{head[:-1]},\n "tests": [\n  {tests}\n ]\n}}\n'


def to_junit(records: list[TestRecord], suite: str = "uffd-harness") -> str:
    c = counts(records)
    root = ET.Element("testsuites")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(records)),
        failures=str(c["failed"] + c["xpassed"]),
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
            "path": "uffd." + r.name.replace("[", ".").replace("]", "").replace("-", "_"),
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


def hardware_fingerprint(
    accel: str, accel_reason: str, guest_cpu: str, kernel: dict, cpuinfo: str | None = None
) -> dict:
    """Where a result was obtained: enough to know whether a rerun is comparable."""
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    cpu = parse_cpuinfo(cpuinfo)
    return {
        "harness": provenance(),
        "host": {
            "cpu_model": cpu.model,
            "cpu_flags": list(cpu.flags),
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "qemu": qemu_version() or "unknown",
        "accel": accel,
        "accel_reason": accel_reason,
        "guest_cpu": guest_cpu,
        "kernel": kernel,
    }


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


class RunDir:
    """results/<run-id>/ and its files: results.jsonl gets a line per test as it ends;
    results.json and the derived files are rewritten at most every FULL_FLUSH_S seconds
    and by flush() at the end, since rewriting them all after every test cost more than
    the rest of the harness's per-test work (~90 ms at 100 tests)."""

    FULL_FLUSH_S = 10.0

    def __init__(self, root: Path, meta: dict, run_id: str | None = None):
        self.run_id = run_id or new_run_id()
        self.root = root
        self.meta = meta
        self.records: list[TestRecord] = []
        self._last_full = 0.0

    def add(self, record: TestRecord) -> None:
        self.records.append(record)
        if record.reproduce and record.outcome in ("failed", "xpassed", "error"):
            name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in record.name)
            script = self.root / "reproduce" / f"{name}.sh"
            text = f"#!/bin/sh\n# {record.name}: {record.outcome}\nexec {record.reproduce}\n"
            publish(script, text, 0o777)
        # One appended line per test is O(1) and survives even a SIGKILL; the full files
        # are rewritten at most every FULL_FLUSH_S and at the end (Ctrl-C included).
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "results.jsonl").open("a") as f:
            f.write(json.dumps(asdict(record), separators=(",", ":")) + "\n")
        if time.monotonic() - self._last_full >= self.FULL_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Write every file now (the end of a run, interrupted or not, calls this)."""
        self._last_full = time.monotonic()
        publish(self.root / "results.json", to_json(self.records, self.meta))
        publish(self.root / "junit.xml", to_junit(self.records))
        publish(self.root / "kcidb.json", to_kcidb(self.records, self.meta, self.run_id))
        publish(
            self.root / "summary.txt",
            summary_text(self.records, self.root, self.meta.get("boot_crashes")),
        )
        if "hardware" in self.meta:
            publish(self.root / "hardware.json", json.dumps(self.meta["hardware"], indent=2) + "\n")


_CELL = {
    "passed": "pass",
    "failed": "FAIL",
    "skipped": "skip",
    "xfailed": "xfail",
    "xpassed": "XPASS",
    "error": "ERROR",
}


def summary_text(
    records: list[TestRecord], root: Path | None = None, boot_crashes: list[dict] | None = None
) -> str:
    """Workload x memory type table of agent cases, then other tests, crashes, and files.

    A record is an agent case when its `agent` field names a workload and a memory type.
    """
    cases: dict[str, dict[str, str]] = {}
    mems: list[str] = []
    others = []
    for r in records:
        a = r.agent or {}
        if a.get("workload") and a.get("mem"):
            cases.setdefault(a["workload"], {})[a["mem"]] = _CELL[r.outcome]
            if a["mem"] not in mems:
                mems.append(a["mem"])
        else:
            others.append(r)
    lines = []
    if cases:
        width = max(len(w) for w in cases) + 2
        cols = [max(len(m), 5) + 2 for m in mems]
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
    if boot_crashes:
        lines += ["", "kernel crashes outside any test (at boot):"]
        lines += [f"  {c['title']}  ({c.get('console', '')})" for c in boot_crashes]
    expected = [r for r in records if r.outcome == "xfailed"]
    if expected:
        lines += ["", "known kernel bugs (xfailed):"]
        lines += [f"  {r.name}: {r.reason}" for r in expected]
    lines += ["", count_line(records)]
    if root:
        lines.append(f"files: {root} (results.json, junit.xml, kcidb.json, console logs, logs/)")
    return "\n".join(lines).rstrip() + "\n"
