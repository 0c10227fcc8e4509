"""uffd-harness command line: parse, call the library, print, exit with a meaningful code."""

import argparse
import contextlib
import json
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from harness import HarnessError, UsageError
from harness.cli.exits import (
    EXIT_CRASH,
    EXIT_FAILED,
    EXIT_HARNESS,
    EXIT_PASSED,
    EXIT_TIMEOUT,
    interrupted_exit_code,
    on_signal,
)
from harness.cli.progress import Clock
from harness.guest.guest import Guest, GuestHang, guest_from_settings
from harness.guest.ssh import CommandTimeout, SshSession
from harness.kernel.image import KernelImage
from harness.settings.options import add_guest_args, add_suite_args, arg_type, settings_from_args
from harness.settings.schema import GUEST, SUITE, as_flags
from harness.settings.values import parse_seconds

#: The limit of boot's command and of agent's run when neither --timeout nor
#: --guest-timeout is given.
BOOT_COMMAND_TIMEOUT = 24 * 3600.0
AGENT_TIMEOUT = 1800.0


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line and exit 2, like every other usage
    error (UsageError, caught in main), instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def command_timeout(args: argparse.Namespace, settings: dict[str, object], default: float) -> float:
    """--timeout, else --guest-timeout (a reproduce line's limit), else the default."""
    limit = args.timeout if args.timeout is not None else settings["guest_timeout"]
    return default if limit is None else float(limit)  # type: ignore[arg-type]


def _write(stream: "object") -> "object":
    def sink(data: bytes) -> None:
        stream.buffer.write(data)  # type: ignore[attr-defined]
        stream.flush()  # type: ignore[attr-defined]

    return sink


@contextlib.contextmanager
def running_guest(guest: Guest, keep_log: bool) -> Iterator[Guest]:
    """Start the guest, and whatever happens stop it; report kernel crashes seen on its
    console, and keep the console log when something went wrong or it was asked for."""
    from harness.verdict.crashlog import parse as parse_crashes

    ok = False
    try:
        guest.start()
        yield guest
        ok = True
    finally:
        guest.stop()
        crashes = parse_crashes(guest.console.read())
        for c in crashes:
            print(f"kernel crash: {c.title}", file=sys.stderr)
        if ok and not crashes and not keep_log:
            guest.cleanup()
        else:
            print(f"console log kept: {guest.console.path}", file=sys.stderr)
        guest.crashes = crashes


def run_streamed(guest: Guest, cmd: str, timeout: float, stdout: bool = True):
    """Run `cmd` with its stderr (and stdout) streamed; a timeout becomes a hang report."""
    try:
        res = guest.run(
            cmd,
            timeout,
            on_stdout=_write(sys.stdout) if stdout else None,
            on_stderr=_write(sys.stderr),
        )
    except CommandTimeout:
        raise GuestHang(cmd, timeout, guest.hang_dump(), "") from None
    return res


def cmd_boot(args: argparse.Namespace) -> int:
    clock = Clock()
    settings = settings_from_args(args)
    timeout = command_timeout(args, settings, BOOT_COMMAND_TIMEOUT)
    guest = guest_from_settings(settings, args.console_log, clock)
    with running_guest(guest, keep_log=bool(args.console_log)):
        for f in args.push:
            guest.push(f, f"/tmp/{f.name}", 0o755 if f.stat().st_mode & 0o111 else 0o644)
        if args.command:
            code = run_streamed(guest, shlex.join(args.command), timeout).exit_code
        else:
            if not isinstance(guest.channel, SshSession):
                raise HarnessError(
                    "an interactive shell needs SSH, and this guest is driven over its "
                    "console channel; give a command to run instead: boot -- CMD"
                )
            clock.say("shell", "interactive shell; exit it to stop the guest")
            code = guest.channel.shell()
    return 1 if guest.crashes and code == 0 else code


def cmd_agent(args: argparse.Namespace) -> int:
    """Build the agent, boot, push it, run `uffd-agent ARGS`; for `suite`, apply the
    known-issues list and exit non-zero only on an unexpected failure or a kernel crash."""
    from harness.agent.build import build_agent
    from harness.agent.session import REMOTE_PATH, AgentSession, parse_output

    if not args.agent_args:
        raise UsageError("give the agent's arguments after --, e.g. -- features, -- suite")
    settings = settings_from_args(args)
    timeout = command_timeout(args, settings, AGENT_TIMEOUT)
    clock = Clock()
    t0 = time.monotonic()
    binary = build_agent()
    clock.say("agent", f"{binary} ({time.monotonic() - t0:.2f} s)")
    guest = guest_from_settings(settings, args.console_log, clock, preload=(binary,))
    suite = args.agent_args[0] == "suite"
    with running_guest(guest, keep_log=bool(args.console_log)):
        AgentSession(guest, binary)
        cmd = shlex.join([REMOTE_PATH, *args.agent_args])
        res = run_streamed(guest, cmd, timeout, stdout=not suite)
        code = res.exit_code
        if suite:
            results, _ = parse_output(res.stdout.decode(errors="replace"))
            print(json.dumps(results, indent=1))
            code = _suite_verdicts(results, guest.kernel)
    return 1 if guest.crashes and code == 0 else code


def _suite_verdicts(results: object, kernel: KernelImage) -> int:
    """Print one line per non-passing case and the count line; 1 on an unexpected failure."""
    from harness.kernel.info import kernel_config
    from harness.results.record import TestRecord, count_line
    from harness.verdict.known_issues import load_known_issues
    from harness.verdict.outcomes import verdict

    if not isinstance(results, list):
        raise HarnessError("`uffd-agent suite` printed no JSON array")
    issues = load_known_issues()
    config = kernel_config(kernel)
    records = []
    for r in results:
        v = verdict(r, issues, kernel.release, config)
        name = f"{r.get('workload')}-{r.get('mem')}"
        records.append(TestRecord(name, v.outcome, float(r.get("duration", 0) or 0), v.reason))
        if v.outcome != "passed":
            print(f"{v.outcome.upper():8} {name}: {v.reason.splitlines()[0] if v.reason else ''}")
    print(count_line(records))
    return 1 if any(r.outcome in ("failed", "error") for r in records) else 0


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    from harness.results.formats import summary_text
    from harness.results.record import TestRecord
    from harness.results.rundir import new_run_id
    from harness.suite import run_pytest, suite_args

    settings = settings_from_args(args)
    prep = None
    if args.with_kselftest or args.src:
        from harness.cli.kselftest import prepare
        from harness.cli.progress import Clock

        if not (args.with_kselftest and args.src):
            raise UsageError("--with-kselftest and --src LINUX go together")
        # Before the suite: a bad tree or a failing build must not cost a suite run.
        prep = prepare(args.src, None, Clock())
    results = settings["results"] or Path("results") / new_run_id()
    try:
        results.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    except OSError as e:
        raise UsageError(f"--results {results}: cannot create it ({e.strerror})") from None
    # Every setting spelled out: the printed line reruns this very suite.
    values = {**settings, "results": results}
    argv = [*suite_args(), *as_flags(values, "pytest", GUEST + SUITE), *args.pytest_args]
    print(f"uffd-harness run: pytest {' '.join(argv)}", file=sys.stderr, flush=True)
    rc = run_pytest(argv)
    path = results / "results.json"
    data = None
    if path.exists():
        data = json.loads(path.read_text())
        records = [TestRecord(**t) for t in data["tests"]]
        if not prep:  # with the selftests, one summary of both comes after them
            print("\n== uffd-harness summary ==")
            meta = data["meta"]
            channel = meta.get("hardware", {}).get("guest_channel", "ssh")
            print(summary_text(records, results, meta.get("session_crashes"), channel), end="")
    ks_code = None
    if prep and rc != pytest.ExitCode.INTERRUPTED:
        from harness.cli.kselftest import run_with_kselftest

        ks_code = run_with_kselftest(prep, settings, results)
        data = json.loads(path.read_text()) if path.exists() else data
    if rc == pytest.ExitCode.INTERRUPTED:
        print("uffd-harness run: interrupted; the results above are what finished", file=sys.stderr)
    if rc == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("uffd-harness run: no tests were collected", file=sys.stderr)
    code = run_exit_code(rc, data, interrupted_exit_code())
    if ks_code is not None and code in (EXIT_PASSED, EXIT_FAILED):
        # The selftests' verdict joins the suite's: a crash (3) outranks a failure (1).
        code = ks_code if ks_code == EXIT_CRASH else max(code, ks_code)
    if code == EXIT_CRASH:
        print(f"uffd-harness run: the kernel crashed (exit {EXIT_CRASH})", file=sys.stderr)
    return code


def kernel_crashed(data: dict | None) -> bool:
    """Whether results.json holds a kernel crash: in a test's record, or outside every test
    (at boot, in a boot that failed, between tests, after the last one, a kmemleak leak)."""
    if not data:
        return False
    return bool(data.get("meta", {}).get("session_crashes")) or any(
        t.get("crashes") for t in data.get("tests", [])
    )


def run_exit_code(pytest_rc: int, data: dict | None, interrupted: int) -> int:
    """`uffd-harness run`'s exit code from pytest's and the results (None: no results.json).

    Most urgent first: a stopped run (128 + the signal), a usage or harness error (2), a
    kernel crash (3, whatever the tests said), failures (1), all passed (0). pytest's own
    codes never leak out: its internal error is ours (2) and its 4 is a usage error (2)."""
    from pytest import ExitCode

    if pytest_rc == ExitCode.INTERRUPTED:
        return interrupted
    if pytest_rc in (ExitCode.INTERNAL_ERROR, ExitCode.USAGE_ERROR):  # pytest said why
        return EXIT_HARNESS
    if kernel_crashed(data):
        return EXIT_CRASH
    if pytest_rc == ExitCode.OK:
        return EXIT_PASSED
    return EXIT_FAILED  # TESTS_FAILED, NO_TESTS_COLLECTED, or a code pytest added later


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.cli.doctor import run_doctor

    return run_doctor(install=args.install)


class VersionAction(argparse.Action):
    """--version, asking git for the commit only when it is given."""

    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, **kw)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from harness.results.provenance import version_line

        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="uffd-harness",
        description="Boot x86_64 QEMU guests and test the kernel's userfaultfd support.",
    )
    p.add_argument(
        "--version", action=VersionAction, help="print the version (and git commit) and exit"
    )
    sub = p.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "boot",
        help="boot a guest, run a command in it (or a shell), stop it",
        description="Boot a guest, push files to /tmp, run CMD (streamed) and "
        "exit with its exit code; without CMD, open an interactive shell.",
    )
    add_guest_args(b)
    b.add_argument("--console-log", type=Path, help="write the serial console log here")
    b.add_argument(
        "--push",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="copy FILE to /tmp/<basename> in the guest (repeatable)",
    )
    b.add_argument(
        "--timeout",
        type=arg_type(parse_seconds),
        metavar="SECONDS",
        help=f"limit for CMD; on expiry exit {EXIT_TIMEOUT} "
        "(default: --guest-timeout if given, else 24 h)",
    )
    b.add_argument("command", nargs="*", metavar="-- CMD", help="command to run in the guest")
    b.set_defaults(func=cmd_boot)

    a = sub.add_parser(
        "agent",
        help="boot a guest and run the uffd agent in it",
        description="Build the static uffd agent, boot a guest, push the agent and run "
        "`uffd-agent ARGS`; e.g. -- features, -- list, -- run wp-basic --mem anon, "
        "-- suite --filter 'wp-*'.",
    )
    add_guest_args(a)
    a.add_argument("--console-log", type=Path, help="write the serial console log here")
    a.add_argument(
        "--timeout",
        type=arg_type(parse_seconds),
        metavar="SECONDS",
        help=f"limit for the agent; on expiry dump the guest's tasks and exit {EXIT_TIMEOUT} "
        f"(default: --guest-timeout if given, else {AGENT_TIMEOUT:.0f})",
    )
    a.add_argument("agent_args", nargs="*", metavar="-- ARGS", help="uffd-agent arguments")
    a.set_defaults(func=cmd_agent)

    r = sub.add_parser(
        "run",
        help="run the uffd suite and print a summary table",
        description="Run the uffd suite (tests/guest/test_agent.py: every agent workload on "
        "every memory type) under pytest with these guest settings and print a summary "
        "table; arguments after -- go to pytest (e.g. -k wp- -x -n 2).",
    )
    add_guest_args(r)
    add_suite_args(r)
    r.add_argument(
        "--with-kselftest",
        action="store_true",
        help="after the suite, run the --src tree's userfaultfd selftests into the same "
        "results, with the side-by-side table (see `uffd-harness kselftest`)",
    )
    r.add_argument("--src", type=Path, metavar="LINUX", help="kernel tree for --with-kselftest")
    r.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS")
    r.set_defaults(func=cmd_run)

    from harness.bench.command import add_bench_parser
    from harness.cli.compare import add_compare_parser
    from harness.cli.coverage import add_coverage_parser
    from harness.cli.kernel import add_kernel_parser
    from harness.cli.kselftest import add_kselftest_parser
    from harness.cli.nightly import add_nightly_parser
    from harness.cli.repro import add_repro_parser
    from harness.cli.soak import add_soak_parser

    add_bench_parser(sub)
    add_kernel_parser(sub)
    add_coverage_parser(sub)
    add_kselftest_parser(sub)
    add_soak_parser(sub)
    add_compare_parser(sub)
    add_repro_parser(sub)
    add_nightly_parser(sub)

    d = sub.add_parser("doctor", help="check the host for what the harness needs")
    d.add_argument(
        "--install", action="store_true", help="install what is missing (as root, with apt-get)"
    )
    d.set_defaults(func=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        args = build_parser().parse_args(argv)
        for f in getattr(args, "push", []):
            if not f.is_file():
                raise UsageError(f"--push {f}: no such file")
        return args.func(args)
    except GuestHang as e:
        print(
            f"uffd-harness: {e}\n--- guest dump (SysRq w, l) ---\n{e.dump[-20000:]}",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    except HarnessError as e:
        print(f"uffd-harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("uffd-harness: interrupted", file=sys.stderr)
        return interrupted_exit_code()


if __name__ == "__main__":
    sys.exit(main())
