"""`uffd-agent prove` outputs for one workload, over its memory types -> was every check
proven able to fail?

Pure: the caller runs the agent (on the host, in a guest) and feeds each memory type's JSON
in turn; this says which arguments the next call takes and what the results add up to.

Policy: a check name is proven once per workload and memory-type class, on the first type
of the class (in MEM_ORDER, cheapest first under TCG) whose run records it; later types of
the class get it in --skip-proven, still run plainly, and prove the names only they record.
With no classes (the default) every type is one class: each name is proven once per
workload. A check a known kernel bug makes fail on the booted kernel
(harness/verdict/known_issues.yaml) is passed as --known-failing, and left unproven there
without blame.
"""

from dataclasses import dataclass, field

from harness.verdict.known_issues import KnownIssue, match
from harness.verdict.outcomes import describe_failure, verdict

#: Cheapest first under TCG: a name several types record is proven on the first of them.
MEM_ORDER = (
    "anon",
    "shmem",
    "shmem-private",
    "anon-thp",
    "hugetlb",
    "hugetlb-private",
    "hugetlb-1g",
)


def mem_order(mems: list[str]) -> list[str]:
    """mems in proof order (unknown names last, as given)."""
    rank = {m: i for i, m in enumerate(MEM_ORDER)}
    return sorted(mems, key=lambda m: rank.get(m, len(rank)))


#: One class for the hugetlb types (they share the hugetlb code paths, in the kernel and in
#: the agent's teardown), one for the others.
HUGETLB_APART = {"hugetlb": "hugetlb", "hugetlb-private": "hugetlb", "hugetlb-1g": "hugetlb"}


@dataclass
class Proof:
    workload: str
    issues: list[KnownIssue]
    release: str
    #: mem -> its class; the types not in it form one class
    classes: dict[str, str] = field(default_factory=dict)
    #: class -> name -> the memory type it was proven on
    proven_in: dict[str, dict[str, str]] = field(default_factory=dict)
    per_mem: dict[str, int] = field(default_factory=dict)  # mem -> names proven there
    tolerated: dict[str, str] = field(default_factory=dict)  # name -> "mem: why"
    skipped: list[str] = field(default_factory=list)  # "mem: why"
    problems: list[str] = field(default_factory=list)
    #: mem -> the names its passing plain run recorded
    recorded: dict[str, set[str]] = field(default_factory=dict)
    #: names a perturbed run did not fail (each already one of the problems)
    refuted: set[str] = field(default_factory=set)

    def _proven_for(self, mem: str) -> dict[str, str]:
        return self.proven_in.setdefault(self.classes.get(mem, ""), {})

    @property
    def proven(self) -> dict[str, str]:
        """name -> the first memory type it was proven on, over every class."""
        out: dict[str, str] = {}
        for names in self.proven_in.values():
            for name, mem in names.items():
                out.setdefault(name, mem)
        return out

    def proofs(self) -> int:
        """Checks proven, counting a name once per class."""
        return sum(len(names) for names in self.proven_in.values())

    def _known(self, mem: str) -> KnownIssue | None:
        return match(self.issues, self.workload, mem, self.release)

    def args(self, mem: str) -> list[str]:
        """The agent arguments that prove this workload on mem, given what came before."""
        args = ["prove", self.workload, "--mem", mem]
        known = self._known(mem)
        if known and known.checks:
            args += ["--known-failing", ",".join(known.checks)]
        done = self._proven_for(mem)
        if done:
            args += ["--skip-proven", ",".join(sorted(done))]
        return args

    def add(self, mem: str, data: object) -> None:
        """The JSON `uffd-agent prove WORKLOAD --mem mem` printed."""
        if not isinstance(data, dict) or not isinstance(data.get("plain"), dict):
            self.problems.append(f"{mem}: prove printed no proof: {data!r:.300}")
            return
        plain = data["plain"]
        if plain.get("status") == "skip":
            self.skipped.append(f"{mem}: {plain.get('reason')}")
            return
        names = [c["name"] for c in plain.get("checks", [])]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            self.problems.append(f"{mem}: duplicate check names: {', '.join(dups)}")
        if plain.get("status") == "pass":
            self.recorded[mem] = set(names)
        elif verdict(plain, self.issues, self.release).outcome != "xfailed":
            self.problems.append(f"{mem}: the plain run failed: {describe_failure(plain)}")
            return
        known = self._known(mem)
        self.per_mem[mem] = 0
        for c in data.get("checks", []):
            name, state = c["name"], c.get("proven")
            if state is True:
                self._proven_for(mem).setdefault(name, mem)
                self.per_mem[mem] += 1
            elif state is False:
                self.refuted.add(name)
                self.problems.append(f"{mem}: not proven: {name}: {c.get('reason')}")
            elif known and name in known.checks:
                self.tolerated.setdefault(name, f"{mem}: {c.get('reason')}")

    def never_proven(self) -> list[str]:
        """ "mem: name" for each check a passing run recorded that was proven nowhere."""
        excused = self.tolerated.keys() | self.refuted
        return sorted(
            f"{m}: {n}"
            for m, names in self.recorded.items()
            for n in names - self._proven_for(m).keys() - excused
        )

    def all_problems(self) -> list[str]:
        return self.problems + [
            f"recorded by a passing run, never proven: {n}" for n in self.never_proven()
        ]

    def ran(self) -> bool:
        """Whether any memory type ran the workload (rather than skipping it)."""
        return bool(self.per_mem)

    def summary(self) -> str:
        line = f"{self.workload}: {len(self.proven)} checks proven"
        if self.proofs() != len(self.proven):
            line += f" ({self.proofs()} counting each class apart)"
        if self.per_mem:
            line += f" ({', '.join(f'{m} {n}' for m, n in self.per_mem.items())})"
        tolerated = sorted(self.tolerated.keys() - self.proven.keys())
        if tolerated:
            line += f"; unproven, a known kernel bug fails them: {', '.join(tolerated)}"
        if self.skipped:
            line += f"; skipped on {'; '.join(self.skipped)}"
        return line
