"""What a reproduction run found: its iterations and the report. Pure: the loop that runs
them is `uffd-harness repro` (harness/cli/repro.py)."""

import statistics
from dataclasses import asdict, dataclass, field

#: Iteration outcomes that end a reproduction unless it was told to go on.
PROBLEMS = ("fail", "known-bug", "crash", "hang", "error")


@dataclass
class Iteration:
    n: int
    outcome: str  # pass, skip, or one of PROBLEMS
    seconds: float
    detail: str = ""  # the failing checks, the hang, the error
    crashes: list[str] = field(default_factory=list)  # crash titles from its console slice
    console: str = ""  # the console log of a failing iteration (its tail is reported)


@dataclass
class Repro:
    target: str
    iterations: list[Iteration] = field(default_factory=list)
    guests: int = 0
    interrupted: bool = False

    @property
    def problems(self) -> list[Iteration]:
        return [i for i in self.iterations if i.outcome in PROBLEMS]

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "guests": self.guests,
            "interrupted": self.interrupted,
            "iterations": [
                {k: v for k, v in asdict(i).items() if k != "console"} for i in self.iterations
            ],
        }


def _spread(seconds: list[float]) -> str:
    s = sorted(seconds)
    p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
    return (
        f"min {s[0]:.2f} s, median {statistics.median(s):.2f} s, p95 {p95:.2f} s, max {s[-1]:.2f} s"
    )


def report(r: Repro, excerpt_lines: int = 40) -> str:
    """Verdict line first, then the failures with their iteration numbers, crash titles,
    run times, and the console excerpt of the first failure."""
    n = len(r.iterations)
    problems = r.problems
    stopped = " (interrupted)" if r.interrupted else ""
    if problems:
        first = problems[0]
        head = (
            f"REPRODUCED{stopped}: {r.target}: {len(problems)} of {n} iterations failed, "
            f"first at iteration {first.n} ({first.outcome})"
        )
    elif r.iterations and all(i.outcome == "skip" for i in r.iterations):
        head = f"SKIP{stopped}: {r.target} cannot run here: {r.iterations[0].detail}"
    else:
        head = f"NOT REPRODUCED{stopped}: {r.target}: {n} iterations, all passed"
    lines = [head, f"guests booted: {r.guests}"]
    if problems:
        lines += ["", "failures:"]
        for i in problems:
            crash = f" [{'; '.join(i.crashes)}]" if i.crashes else ""
            lines.append(f"  iteration {i.n}: {i.outcome}{crash}: {i.detail}")
    titles = sorted({t for i in r.iterations for t in i.crashes})
    if titles:
        lines += ["", "kernel crash titles:"] + [f"  {t}" for t in titles]
    if r.iterations:
        lines += ["", f"run time ({n} iterations): {_spread([i.seconds for i in r.iterations])}"]
    if problems and problems[0].console.strip():
        tail = problems[0].console.replace("\r", "").splitlines()[-excerpt_lines:]
        lines += ["", f"console, iteration {problems[0].n} (last {len(tail)} lines):"]
        lines += [f"  {line}" for line in tail]
    return "\n".join(lines) + "\n"
