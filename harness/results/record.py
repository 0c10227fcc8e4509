"""Per-test result records and their counts."""

import re
from dataclasses import dataclass, field

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
#: Between a case's id and its run number when cases repeat: test_agent[wp-basic-anon~2].
REPEAT_MARK = "~"
_REPEAT = re.compile(rf"{re.escape(REPEAT_MARK)}\d+(?=\]$)")


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
    #: A kernel selftest case (`uffd-harness kselftest`): binary, mem, case, argv, exit code,
    #: the case's output and the run's output file.
    selftest: dict | None = None

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


def case_key(name: str, agent: dict | None) -> str:
    """The case a record is a run of: `workload:mem` for an agent case, else the test's
    name without its run number (`--repeat`)."""
    a = agent or {}
    if a.get("workload") and a.get("mem"):
        return f"{a['workload']}:{a['mem']}"
    return _REPEAT.sub("", name)


def merged_outcome(outcomes: list[str]) -> str:
    """One outcome for a case's runs: theirs when they agree, else "flaky"."""
    return outcomes[0] if len(set(outcomes)) == 1 else "flaky"


def repeated_cases(records: list[TestRecord]) -> dict[str, dict]:
    """Per case that ran more than once: its runs, the count of each outcome and the
    merged outcome (flaky when they differ)."""
    runs: dict[str, list[str]] = {}
    for r in records:
        runs.setdefault(case_key(r.name, r.agent), []).append(r.outcome)
    return {
        key: {
            "runs": len(o),
            **{k: o.count(k) for k in OUTCOMES if k in o},
            "verdict": merged_outcome(o),
        }
        for key, o in runs.items()
        if len(o) > 1
    }
