"""Exit codes of the CLI, and the signals that end a command like Ctrl-C does."""

import signal

EXIT_TIMEOUT = 124  # as timeout(1) does
# `uffd-harness run`'s exit codes, for a CI job to act on (README: "Exit codes").
EXIT_PASSED = 0  # every case passed or is a known kernel bug (xfail); some case passed
EXIT_FAILED = 1  # a case failed or errored, an XPASS, nothing passed, nothing collected
EXIT_HARNESS = 2  # a usage or harness error: bad flag, directory in use, pytest error
EXIT_CRASH = 3  # the kernel crashed: in a test, at boot, between tests, after the last


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised as Ctrl-C's exception: pytest (and every `finally`) then
    ends the way it does for Ctrl-C: results written, guests stopped. A SystemExit would
    only fail the running test, and pytest would go on with the next."""

    #: The signal that ended the run, for the exit code (128 + signal, as a shell says).
    signum = 0


def on_signal(signum: int, frame: object) -> None:
    Terminated.signum = signum
    raise Terminated()


def interrupted_exit_code() -> int:
    return 128 + (Terminated.signum or signal.SIGINT)
