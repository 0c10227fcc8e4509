"""Per-test result records and their counts."""

from dataclasses import dataclass, field

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")


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
