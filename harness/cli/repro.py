"""`uffd-harness repro TARGET`: run one agent case, or a C reproducer, again and again on
the same guest setup until it fails, crashes or hangs; replace a guest that dies and go
on counting; report what was seen (harness/results/repro.py)."""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import HarnessError, UsageError
from harness.cli.exits import EXIT_CRASH, EXIT_FAILED, interrupted_exit_code
from harness.cli.progress import Clock
from harness.guest.guest import Guest, GuestHang, guest_from_settings
from harness.guest.ssh import CommandTimeout
from harness.results.repro import PROBLEMS, Iteration, Repro, report
from harness.settings.options import add_guest_args, settings_from_args
from harness.verdict.crashlog import parse as parse_crashes

#: A command's limit when --guest-timeout is not given (the suite's, under TCG).
DEFAULT_TIMEOUT = 300.0
C_REMOTE = "/tmp/uffd-repro"
_OUTCOME = {"passed": "pass", "xpassed": "pass", "skipped": "skip", "failed": "fail"}


class AgentTarget:
    """WORKLOAD:MEM, judged like the suite judges it (known-issues list, kernel config)."""

    def __init__(self, workload: str, mem: str):
        from harness.agent.build import build_agent

        self.workload, self.mem = workload, mem
        self.binary = build_agent()
        self.agent = None

    def setup(self, guest: Guest) -> None:
        from harness.agent.session import AgentSession

        self.agent = AgentSession(guest, self.binary)

    def run(self, guest: Guest, timeout: float) -> tuple[str, str]:
        from harness.kernel.info import kernel_config
        from harness.verdict.known_issues import load_known_issues
        from harness.verdict.outcomes import failed_checks, verdict

        assert self.agent
        result = self.agent.run(self.workload, self.mem, timeout).data
        v = verdict(result, load_known_issues(), guest.kernel.release, kernel_config(guest.kernel))
        checks = "; ".join(f"{c['name']}: {c.get('detail', '')}" for c in failed_checks(result))
        if v.outcome == "xfailed":
            return "known-bug", f"{v.reason}; {checks}"
        return _OUTCOME[v.outcome], checks or v.reason


class CTarget:
    """A user's C reproducer: built static on the host, pushed, run; exit 0 is a pass."""

    def __init__(self, source: Path, cache: Path):
        self.binary = compile_reproducer(source, cache)

    def setup(self, guest: Guest) -> None:
        guest.push(self.binary, C_REMOTE, 0o755)

    def run(self, guest: Guest, timeout: float) -> tuple[str, str]:
        res = guest.run(C_REMOTE, timeout)
        if res.exit_code == 0:
            return "pass", ""
        err = res.stderr.decode(errors="replace").strip().splitlines()[-3:]
        return "fail", f"exit code {res.exit_code}" + (
            f"; stderr: {' | '.join(err)}" if err else ""
        )


def compile_reproducer(source: Path, cache: Path) -> Path:
    """cc -static, like the agent; cached by the source's hash. A compile error is a usage
    error naming the compiler's first error and the full log."""
    from harness.agent.build import CFLAGS, compiler

    if not source.is_file():
        raise UsageError(f"{source}: no such reproducer source")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out = cache / f"repro-{source.stem}-{digest}"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / f"repro-{source.stem}-{digest}.log"
    proc = subprocess.run(
        # The agent's flags but -Werror: a reproducer's warnings are its author's business.
        [compiler(), *(f for f in CFLAGS if f != "-Werror"), "-o", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip())
        raise UsageError(f"{source} does not compile: {first} (full log: {log})")
    return out


def parse_target(text: str, results: Path) -> AgentTarget | CTarget:
    if text.endswith(".c"):
        return CTarget(Path(text), results)
    from harness.agent.build import agent_cases

    cases = [f"{w}:{m}" for w, m in agent_cases()]
    if text not in cases:
        close = difflib.get_close_matches(text, cases, n=5, cutoff=0.5)
        hint = f"; close: {', '.join(close)}" if close else "; see `uffd-harness agent -- list`"
        raise UsageError(f"{text}: not an agent case (WORKLOAD:MEM) nor a .c reproducer{hint}")
    workload, mem = text.split(":")
    return AgentTarget(workload, mem)


def one_iteration(guest: Guest, target: AgentTarget | CTarget, n: int, timeout: float) -> Iteration:
    start, t0 = guest.console.offset(), time.monotonic()
    try:
        outcome, detail = target.run(guest, timeout)
    except (GuestHang, CommandTimeout) as e:
        if isinstance(e, CommandTimeout):
            guest.hang_dump()  # onto the console, which the iteration keeps (GuestHang did)
        outcome, detail = "hang", f"{e} (SysRq w/l dump in the console log)"
    except HarnessError as e:
        outcome, detail = "error", str(e).splitlines()[0]
    seconds = time.monotonic() - t0
    if not guest.reachable():
        guest.wait_exit(10.0)  # a panicking guest's last lines land before the slice is cut
    console = guest.console.read(start)
    crashes = [c.title for c in parse_crashes(console)]
    if crashes:
        outcome = "crash"
    it = Iteration(n, outcome, seconds, detail, crashes)
    if outcome in PROBLEMS:
        it.console = console
    return it


def cmd_repro(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)  # checks --repeat too: it is a suite setting
    if args.fresh_guest_every is not None and args.fresh_guest_every < 1:
        raise UsageError(f"--fresh-guest-every {args.fresh_guest_every}: expected a positive count")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = args.results or Path("results") / f"repro-{stamp}"
    results.mkdir(parents=True, exist_ok=True)
    target = parse_target(args.target, results)
    timeout = float(settings["guest_timeout"] or DEFAULT_TIMEOUT)  # type: ignore[arg-type]
    limit = None if args.until_fail else args.repeat
    deadline = time.monotonic() + args.seconds if args.seconds else None
    clock = Clock()
    r = Repro(args.target)
    guest: Guest | None = None
    used = 0
    try:
        n = 0
        while limit is None or n < limit:
            if deadline and time.monotonic() > deadline:
                break
            n += 1
            if guest and (not guest.reachable() or used == args.fresh_guest_every):
                guest.stop()
                guest = None
            if guest is None:
                r.guests += 1
                log = results / f"console-{r.guests}.log"
                preload = (target.binary,)
                guest = guest_from_settings(settings, log, clock, preload=preload)
                guest.start()
                target.setup(guest)
                used = 0
            used += 1
            it = one_iteration(guest, target, n, timeout)
            r.iterations.append(it)
            clock.say("repro", f"iteration {n}: {it.outcome} ({it.seconds:.2f} s)")
            if it.outcome in ("hang", "crash", "error"):
                guest.stop()  # replaced before the next iteration
            if it.outcome == "skip" or (it.outcome in PROBLEMS and not args.keep_going):
                break
    except KeyboardInterrupt:
        r.interrupted = True
    finally:
        if guest:
            guest.stop()
    text = report(r)
    (results / "repro.txt").write_text(text)
    (results / "repro.json").write_text(json.dumps(r.to_json(), indent=2) + "\n")
    print(text, end="")
    print(f"files: {results} (repro.txt, repro.json, console-N.log per guest)", file=sys.stderr)
    if r.interrupted:
        return interrupted_exit_code()
    if any(i.crashes for i in r.iterations):
        return EXIT_CRASH
    if r.problems:
        return EXIT_FAILED
    return 4 if r.iterations and all(i.outcome == "skip" for i in r.iterations) else 0


def add_repro_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repro",
        help="run one case (or a C reproducer) until it fails, crashes or hangs",
        description="Run TARGET again and again: an agent case WORKLOAD:MEM (judged like the "
        "suite judges it, known bugs named) or a C reproducer FILE.c (built static, run in "
        "the guest, exit 0 is a pass). Stops at the first failure, crash or hang unless "
        "--keep-going; a guest that dies is replaced and the count goes on; Ctrl-C prints "
        "what was seen so far. Exit 0 not reproduced, 1 reproduced, 3 a kernel crash, "
        "4 the target cannot run here, 2 bad input.",
    )
    add_guest_args(p)
    p.add_argument("target", metavar="TARGET", help="WORKLOAD:MEM, or a reproducer FILE.c")
    p.add_argument("--repeat", type=int, default=100, metavar="N", help="iterations (default 100)")
    p.add_argument(
        "--until-fail", action="store_true", help="no iteration limit: run until it fails"
    )
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--keep-going", action="store_true", help="go on after failures, counting them")
    p.add_argument(
        "--fresh-guest-every", type=int, metavar="K", help="a new guest every K iterations"
    )
    p.add_argument("--results", type=Path, metavar="DIR", help="default results/repro-<time>")
    p.set_defaults(func=cmd_repro)
