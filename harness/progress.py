"""Progress lines on stderr: '[  1.23s] phase: message', timed from the command's start."""

import sys
import time
from collections.abc import Callable

#: A sink for (phase, message) progress lines; Clock is the one that prints them.
Progress = Callable[[str, str], None]


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, phase: str, message: str) -> None:
        print(
            f"[{time.monotonic() - self.t0:6.2f}s] {phase}: {message}", file=sys.stderr, flush=True
        )
