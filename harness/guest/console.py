"""The serial console: a log file QEMU writes, read by offsets and watched for markers."""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Whole lines only (the lookahead waits for the line's end): a line read in two chunks must
# not be cut at the first one's end.
READY = re.compile(rb"uffd-harness: READY(?: without SSH: [^\r\n]*)?(?=[\r\n])")
GUEST_ERROR = re.compile(rb"uffd-harness: ERROR: [^\r\n]*(?=[\r\n])")
#: The READY line of a guest whose SSH cannot come up, with the guest's reason.
NO_SSH = "uffd-harness: READY without SSH: "
ANY_OUTPUT = re.compile(rb"\S")


@dataclass(frozen=True)
class Match:
    pattern: re.Pattern[bytes]
    text: str
    offset: int  # byte offset just past the match


def _read_bytes(path: Path, start: int = 0, end: int | None = None) -> bytes:
    """Bytes [start, end) of a console file; none while QEMU has not created it yet."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(max(0, end - start))
    except FileNotFoundError:
        return b""


class ConsoleTail:
    """Follows a console file as QEMU writes it: each read returns only what is new."""

    def __init__(self, path: Path, pos: int = 0):
        self.path = path
        self.pos = pos  # byte offset of the first byte not read yet
        self._partial = b""  # the start of a line whose end has not been read yet

    def read_new(self) -> bytes:
        new = _read_bytes(self.path, self.pos)
        self.pos += len(new)
        return new

    def complete_lines(self, new: bytes) -> list[str]:
        """The lines that `new` (from read_new) completes, without their CR LF; a line
        still being written waits for the read that ends it."""
        *lines, self._partial = (self._partial + new).split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]


class ConsoleLog:
    """The console log of one guest. Offsets are byte positions in the file, so a test can
    record where it started and ended and slice out its own kernel log."""

    def __init__(self, path: Path):
        self.path = path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, start: int = 0, end: int | None = None) -> str:
        return _read_bytes(self.path, start, end).decode("utf-8", "replace")

    def tail(self, lines: int = 15) -> str:
        text = self.read(max(0, self.offset() - 16384)).replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])

    def wait_for(
        self,
        patterns: list[re.Pattern[bytes]],
        timeout: float,
        start: int = 0,
        keep_going: Callable[[], bool] = lambda: True,
        poll: float = 0.02,
        on_line: Callable[[str], None] | None = None,
    ) -> Match | None:
        """The first match of any pattern after `start`, or None on timeout or once
        `keep_going()` turns false (QEMU gone). Reads only what is new each time, and
        hands each whole line it read to `on_line` as soon as it has read it."""
        deadline = time.monotonic() + timeout
        buf = b""
        tail = ConsoleTail(self.path, start)
        while True:
            # Asked before reading, so the last words of a guest that just died are read.
            alive = keep_going()
            if new := tail.read_new():
                if on_line:
                    for line in tail.complete_lines(new):
                        on_line(line)
                # Keep a margin from the previous chunk so a marker split across two
                # reads is still found.
                keep = buf[-256:]
                base = tail.pos - len(new) - len(keep)
                buf = keep + new
                found = [(m.start(), p, m) for p in patterns if (m := p.search(buf))]
                if found:
                    _, p, m = min(found, key=lambda t: t[0])
                    return Match(p, m.group(0).decode("utf-8", "replace"), base + m.end())
            if not alive or time.monotonic() >= deadline:
                return None
            time.sleep(poll)
