"""`uffd-harness soak --boots N`: boot and stop N guests back to back, one short agent case
in each, and count failures by phase. A nightly job boots hundreds of guests: a harness
that fails one boot in fifty would fail its matrix every night."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from harness import HarnessError, UsageError
from harness.cli.progress import Clock
from harness.guest.guest import guest_from_settings
from harness.settings.options import add_guest_args, settings_from_args
from harness.verdict.crashlog import parse as parse_crashes

PHASES = ("boot", "agent", "case", "stop", "console")


@dataclass
class Soak:
    boots: int = 0
    failures: Counter = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)
    boot_seconds: list[float] = field(default_factory=list)

    def fail(self, phase: str, n: int, error: str) -> None:
        self.failures[phase] += 1
        self.first_error.setdefault(phase, f"boot {n}: {error.splitlines()[0] if error else '?'}")

    def report(self) -> str:
        total = sum(self.failures.values())
        lines = [f"soak: {self.boots} boots, {total} failures"]
        for phase in PHASES:
            lines.append(f"  {phase:8} {self.failures[phase]:4}  {self.first_error.get(phase, '')}")
        if self.boot_seconds:
            b = sorted(self.boot_seconds)
            p95 = b[min(len(b) - 1, int(0.95 * len(b)))]
            lines.append(
                f"  boot to ready: median {statistics.median(b):.2f} s, p95 {p95:.2f} s, "
                f"max {b[-1]:.2f} s"
            )
        return "\n".join(lines) + "\n"


def one_boot(settings: dict, n: int, workload: str, mem: str, soak: Soak) -> None:
    from harness.agent.build import build_agent
    from harness.agent.session import AgentSession

    binary = build_agent()
    guest = guest_from_settings(settings, events=lambda e: None, preload=(binary,))
    phase = "boot"
    try:
        t0 = time.monotonic()
        guest.start()
        soak.boot_seconds.append(time.monotonic() - t0)
        phase = "agent"
        agent = AgentSession(guest, binary)
        phase = "case"
        res = agent.run(workload, mem, 300.0)
        status = res.data.get("status")
        if status not in ("pass", "skip"):
            raise HarnessError(f"{workload} on {mem}: {status}: {res.data.get('reason', '')}")
        phase = "stop"
        guest.stop()
        if guest.alive():
            raise HarnessError("QEMU still running after stop")
    except Exception as e:  # a soak counts every kind of failure, and goes on
        soak.fail(phase, n, f"{type(e).__name__}: {e}")
        guest.stop()
    crashes = parse_crashes(guest.console.read())
    if crashes:
        soak.fail("console", n, "; ".join(c.title for c in crashes))
    guest.cleanup()


def cmd_soak(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.boots < 1:
        raise UsageError(f"--boots {args.boots}: expected a positive count of guests")
    workload, _, mem = args.case.partition(":")
    clock = Clock()
    soak = Soak()
    try:
        for n in range(1, args.boots + 1):
            before = sum(soak.failures.values())
            one_boot(settings, n, workload, mem or "anon", soak)
            soak.boots = n
            failed = sum(soak.failures.values()) > before
            last = f"{soak.boot_seconds[-1]:.2f} s" if soak.boot_seconds else "-"
            clock.say("soak", f"boot {n}/{args.boots}: {'FAIL' if failed else 'ok'} (boot {last})")
    except KeyboardInterrupt:
        print("uffd-harness soak: interrupted; the figures so far:", file=sys.stderr)
    print(soak.report(), end="")
    return 1 if sum(soak.failures.values()) or soak.boots < args.boots else 0


def add_soak_parser(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser(
        "soak",
        help="boot and stop N guests back to back, one short case in each; failures by phase",
        description="Boot N guests one after the other; in each push the agent, run one "
        "case, stop it and read its console. Every failure is counted by phase (boot, "
        "agent, case, stop, console: a kernel crash report) and the run goes on; exit 1 "
        "if any failed.",
    )
    add_guest_args(s)
    s.add_argument("--boots", type=int, default=100, metavar="N", help="guests (default 100)")
    s.add_argument(
        "--case",
        default="wp-basic:anon",
        metavar="WORKLOAD:MEM",
        help="the case run in each guest (default wp-basic:anon)",
    )
    s.set_defaults(func=cmd_soak)
