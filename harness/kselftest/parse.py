"""The kernel's userfaultfd selftests' output -> one result per case. Pure: text in, cases out.

Three formats exist in the wild, all parsed from the program's stdout and stderr merged
(stderr is unbuffered and the selftests flush stdout before each case, so an `ERROR:` line
lands right after the case it ends):

- **legacy** (`tools/testing/selftests/vm/userfaultfd.c`, 6.1 and older; the newer
  `uffd-stress`): `bounces: N, mode: ..., userfaults: ...` lines for the stress part, then
  `testing X: done.` (or a `userfaults:` count line) per further test. The first error
  prints `ERROR: ... (errno=E, line=L)` and exits 1; some tests fail by exit code alone.
- **unit** (`uffd-unit-tests`): `Testing NAME on MEM... done`, `... skipped [reason: R]`,
  `... failed [reason: R]`, and a closing `Userfaults unit tests: pass=P, skip=S, fail=F
  (total=T)`.
- **KTAP** (`uffd-wp-mremap`, and any program using kselftest.h's result helpers; also the
  kselftest runner's wrapping): `TAP version 13` / `KTAP version 1`, a plan `1..N`,
  `ok N desc`, `not ok N desc`, `ok N # SKIP reason`, diagnostics `# ...`.

The parsers say what the output shows; `interpret` then applies the exit code (0 pass,
4 skip, anything else fail), the cases the run was expected to print, and a hang.
"""

import re
from dataclasses import dataclass, field

#: kselftest's exit codes.
KSFT_PASS, KSFT_FAIL, KSFT_SKIP = 0, 1, 4


@dataclass
class Case:
    name: str
    status: str  # "pass" | "fail" | "skip" | "xfail" | "running" (started, no verdict printed)
    reason: str = ""
    output: str = ""  # the lines of the output that belong to this case
    mem: str | None = None  # the memory type the case names itself, if it does


@dataclass
class Parsed:
    cases: list[Case] = field(default_factory=list)
    #: Problems with the output as a whole (a count line or plan that disagrees, a bail out).
    problems: list[str] = field(default_factory=list)
    #: Output before the first case (headers, `nr_pages:` lines).
    preamble: str = ""


_ERROR = re.compile(r"ERROR: (?P<msg>.*)")
_BOUNCE = re.compile(r"^bounces: \d+, mode:")
_TESTING = re.compile(r"^testing (?P<name>.+?):(?P<rest>.*)$")
_STATS = re.compile(r"userfaults: ")

#: Legacy `testing X:` titles -> short case names (anything else keeps its title).
LEGACY_NAMES = {
    "uffd-wp with pagemap (pgsize=4096)": "pagemap-4k",
    "uffd-wp with pagemap (pgsize=2097152)": "pagemap-thp",
    "UFFDIO_ZEROPAGE": "zeropage",
    "signal delivery": "sigbus",
    "events (fork, remap, remove)": "events",
    "minor faults": "minor",
    "collapse of uffd memory into PMD-mapped THPs": "minor-collapse",
}


def _clean(text: str) -> list[str]:
    # The stats lines print `\b)` to eat a trailing `+`; CRs come from no terminal here.
    return [ln.replace("\b", "").rstrip("\r") for ln in text.splitlines()]


def _fail_on_error(case: Case, line: str) -> bool:
    m = _ERROR.search(line)
    if m:
        case.status = "fail"
        case.reason = case.reason or m.group(0).strip()
    return bool(m)


def parse_legacy(text: str) -> Parsed:
    """The 6.1 `userfaultfd` (and newer `uffd-stress`) output."""
    out = Parsed()
    current: Case | None = None
    pre: list[str] = []
    for line in _clean(text):
        title = _TESTING.match(line)
        if _BOUNCE.match(line) and (current is None or current.name != "stress"):
            current = Case("stress", "running")
            out.cases.append(current)
        elif title:
            if current and current.status == "running":
                # The next test started: the previous one returned success.
                current.status = "pass"
            name = title.group("name").strip()
            current = Case(LEGACY_NAMES.get(name, name), "running")
            out.cases.append(current)
            rest = title.group("rest")
            if re.match(r"\s*done\.?\s*$", rest):
                current.status = "pass"
        elif current is None:
            # Before any case (`nr_pages:`, or an error opening the uffd): the exit code
            # and the last words say what it means.
            pre.append(line)
            continue
        if current is None:
            continue
        current.output += line + "\n"
        if _fail_on_error(current, line) or current.status != "running":
            continue
        if current.name != "stress" and (
            re.search(r":\s*done\.?\s*$", line) or line.rstrip().endswith(" done.")
        ):
            current.status = "pass"
    out.preamble = "\n".join(pre)
    # A stress part whose bounces all printed, or a test that printed its fault counts,
    # is still "running": only the exit code (interpret) says whether it returned success.
    return out


_UNIT_START = re.compile(r"Testing (?P<title>.+?)\.\.\. ")
_UNIT_RESULT = re.compile(
    r"(?P<verdict>done|skipped \[reason: (?P<skip>.*?)\]|failed \[reason: (?P<fail>.*?)\])\s*$"
)
_UNIT_TOTALS = re.compile(
    r"Userfaults unit tests: pass=(?P<p>\d+), skip=(?P<s>\d+), fail=(?P<f>\d+) \(total=(?P<t>\d+)\)"
)


def _unit_case(title: str) -> Case:
    name, sep, mem = title.rpartition(" on ")
    return Case(name, "running", mem=mem) if sep else Case(title, "running")


def parse_unit(text: str) -> Parsed:
    """`uffd-unit-tests`: one `Testing NAME on MEM... VERDICT` per case."""
    out = Parsed()
    current: Case | None = None
    pre: list[str] = []
    totals = None
    for line in _clean(text):
        m = _UNIT_TOTALS.search(line)
        if m:
            totals = {k: int(v) for k, v in m.groupdict().items()}
            continue
        rest = line
        start = _UNIT_START.match(line)
        if start:
            current = _unit_case(start.group("title"))
            out.cases.append(current)
            rest = line[start.end() :]
        elif current is None:
            pre.append(line)
            continue
        assert current is not None
        current.output += line + "\n"
        if current.status != "running":
            continue
        if _fail_on_error(current, rest):
            continue
        verdict = _UNIT_RESULT.search(rest)
        if verdict and (start or verdict.start() == 0):
            if verdict.group("skip") is not None:
                current.status, current.reason = "skip", verdict.group("skip")
            elif verdict.group("fail") is not None:
                current.status, current.reason = "fail", verdict.group("fail")
            else:
                current.status = "pass"
    out.preamble = "\n".join(pre)
    if totals:
        seen = {s: sum(c.status == s for c in out.cases) for s in ("pass", "skip", "fail")}
        said = {"pass": totals["p"], "skip": totals["s"], "fail": totals["f"]}
        if seen != said:
            out.problems.append(
                f"the closing count line says pass={said['pass']}, skip={said['skip']}, "
                f"fail={said['fail']}; the case lines say pass={seen['pass']}, "
                f"skip={seen['skip']}, fail={seen['fail']}"
            )
    return out


_KTAP_HEADER = re.compile(r"^(?P<prefix>(?:# |\s{4})*)(?:TAP|KTAP) version \d+\s*$")
_KTAP_PLAN = re.compile(r"^1\.\.(?P<n>\d+)")
_KTAP_RESULT = re.compile(
    r"^(?P<not>not )?ok (?P<num>\d+)(?: -)? ?(?P<desc>[^#]*?)\s*"
    r"(?:#\s*(?P<directive>SKIP|TODO|XFAIL|TIMEOUT|ERROR)\b\s*(?P<why>.*))?$",
    re.IGNORECASE,
)
_KTAP_RUN = re.compile(r"^\[RUN\]\s*(?P<name>.+)$")
_KTAP_TOTALS = re.compile(r"^# ?Totals: pass:(?P<p>\d+) fail:(?P<f>\d+) .*skip:(?P<s>\d+)")


def parse_ktap(text: str) -> Parsed:
    """A KTAP document (the innermost one in the text, at whatever prefix it is nested).

    A case is named by the `# [RUN] NAME` diagnostic before its result when there is one
    (kselftest programs print the failure message, not the test's name, in `not ok`)."""
    out = Parsed()
    lines = _clean(text)
    prefix = None
    # The innermost document: the kselftest runner nests a program's own KTAP in its
    # output with a "# " prefix, and reports the whole program as its one result.
    for i, line in enumerate(lines):
        m = _KTAP_HEADER.match(line)
        if m and (prefix is None or len(m.group("prefix")) > len(prefix)):
            prefix, start = m.group("prefix"), i + 1
    if prefix is not None:
        lines = lines[start:]
    else:
        out.problems.append("no KTAP header (`TAP version 13` or `KTAP version 1`)")
        return out
    plan = None
    pending: list[str] = []
    run_name = ""
    for raw in lines:
        if not raw.startswith(prefix):
            continue
        line = raw[len(prefix) :]
        m = _KTAP_PLAN.match(line)
        if m and plan is None:
            plan = int(m.group("n"))
            continue
        if line.startswith("Bail out!"):
            out.problems.append(line.strip())
            break
        totals = _KTAP_TOTALS.match(line)
        if totals:
            continue
        if line.startswith("#"):
            diag = line.lstrip("#").strip()
            pending.append(line)
            run = _KTAP_RUN.match(diag)
            if run:
                run_name = run.group("name").strip()
            continue
        m = _KTAP_RESULT.match(line)
        if not m:
            pending.append(line)
            continue
        desc = m.group("desc").strip()
        directive = (m.group("directive") or "").upper()
        why = (m.group("why") or "").strip()
        if directive == "SKIP":
            status, reason = "skip", why or "skipped without a reason"
        elif directive in ("TODO", "XFAIL"):
            status, reason = "xfail", why
        elif m.group("not") or directive in ("TIMEOUT", "ERROR"):
            status, reason = "fail", (why or desc or "not ok")
        else:
            status, reason = "pass", ""
        name = run_name or desc or f"test {m.group('num')}"
        out.cases.append(Case(name, status, reason, "\n".join([*pending, line]) + "\n"))
        pending, run_name = [], ""
    if plan is not None and plan != len(out.cases):
        out.problems.append(f"the plan says 1..{plan}; {len(out.cases)} results were printed")
    return out


_FAULTS = re.compile(r"(\d+) (missing|wp|minor) \(")


def stress_faults(output: str) -> dict[str, int]:
    """Faults the stress part resolved, by kind, summed over its bounces' `userfaults:`
    lines (`bounces: 3, ..., userfaults: 567 missing (277+290+) 1718 wp (807+911+)`)."""
    total = {"missing": 0, "wp": 0, "minor": 0}
    for line in _clean(output):
        if _BOUNCE.match(line):
            for n, kind in _FAULTS.findall(line.partition("userfaults:")[2]):
                total[kind] += int(n)
    return total


PARSERS = {"legacy": parse_legacy, "unit": parse_unit, "ktap": parse_ktap}


def last_words(text: str, limit: int = 300) -> str:
    """The last non-empty line the program printed (a skip's or an exit's reason)."""
    for line in reversed(_clean(text)):
        if line.strip():
            return line.strip()[:limit]
    return ""


def interpret(
    parsed: Parsed,
    exit_code: int | None,
    output: str,
    expected: tuple[str, ...] = (),
    hang: str = "",
) -> list[Case]:
    """The final cases of one run of a selftest binary.

    `exit_code` None with `hang` set: the run was cut at a timeout (`hang` says so).
    `expected`: the cases this invocation prints when it runs to its end; those it never
    printed are skips saying why (never passes)."""
    cases = [Case(c.name, c.status, c.reason, c.output, c.mem) for c in parsed.cases]
    said = last_words(output)
    running = [c for c in cases if c.status == "running"]
    last = cases[-1] if cases else None
    if hang:
        stopped = f"{hang}; the selftest was stopped"
        for c in running:
            c.status, c.reason = "fail", stopped
        if not running:
            cases.append(Case("(after the last case)", "fail", stopped, output[-2000:]))
            last = cases[-1]
        ended = f"not reached: {hang}"
    elif exit_code == KSFT_SKIP:
        for c in running:
            c.status, c.reason = "skip", said or "exit code 4 (skip) without a reason"
        if not cases:
            cases.append(Case("(whole program)", "skip", said or "exit code 4 (skip)", output))
        ended = f"not run: the selftest skipped (exit 4: {said or 'no reason printed'})"
    elif exit_code == KSFT_PASS:
        for c in running:
            c.status = "pass"
        if not cases:
            cases.append(
                Case("(whole program)", "fail", "exited 0 but printed no case results", output)
            )
        ended = "not printed by the selftest: it skips what the kernel lacks without a word"
    else:
        code = "no exit code" if exit_code is None else f"exit code {exit_code}"
        for c in running:
            c.status = "fail"
            c.reason = c.reason or f"{code} during this case; last output: {said}"
        if not running:
            failed = [c for c in cases if c.status == "fail"]
            if not failed:
                # Tests that fail by their return value alone (6.1's events test) end the
                # program with a non-zero exit after their last line: blame the last one.
                if last and last.status == "pass":
                    last.status = "fail"
                    last.reason = f"{code} after this case, the last one printed: {said}"
                else:
                    cases.append(Case("(whole program)", "fail", f"{code}: {said}", output))
        where = f" during {running[0].name}" if running else ""
        ended = f"not reached: the selftest ended with {code}{where}"
    seen = {c.name for c in cases}
    cases += [Case(name, "skip", ended) for name in expected if name not in seen]
    for problem in parsed.problems:
        cases.append(Case("(output)", "fail", problem))
    return cases
