"""A kernel log line (console or dmesg) split into its printk timestamp and its message.

Pure text: the crash parser and the bench's boot timelines read lines through it.
"""

import re
from dataclasses import dataclass

# `[   12.345678] `, `[   12.3][ T123] `, `<4>[ 1.0] `, syslog-style `<4>`, and what
# syzkaller also strips: dropped-message notes and a login prompt glued in front.
_PREFIX = re.compile(
    r"^(?:\*\* \d+ printk messages dropped \*\* )?"
    r"(?:<\d+>)?(?:\[ *(?P<ts>\d+\.\d+)\])?(?:\[ *[CT]\d+\])?(?(ts) ?|)"
)
_LOGIN = " login: "
# A kernel line can land mid-line after userspace output that had no newline yet.
_EMBEDDED = re.compile(r"\[ *(?P<ts>\d+\.\d{6})\](?:\[ *[CT]\d+\])? ")


@dataclass(frozen=True)
class PrintkLine:
    msg: str  # the console prefix removed, indentation kept (stack frames are indented)
    ts: float | None  # the kernel clock in seconds, when the line carries it
    prefixed: bool  # whether the line carried a console prefix at all


def split_line(raw: str) -> PrintkLine:
    """One line (without its newline; a trailing CR is dropped)."""
    raw = raw.rstrip("\r")
    rest = raw.split(_LOGIN, 1)[1] if _LOGIN in raw else raw
    m = _PREFIX.match(rest)
    if not m.end() and "[" in rest:
        m = _EMBEDDED.search(rest)
    if not m or not m.end():
        return PrintkLine(rest, None, False)
    ts = m.group("ts")
    return PrintkLine(rest[m.end() :], float(ts) if ts else None, True)


def timestamped(text: str) -> list[tuple[float, str]]:
    """(kernel clock seconds, message) for each timestamped line of a console or dmesg."""
    return [(p.ts, p.msg) for line in text.splitlines() if (p := split_line(line)).ts is not None]
