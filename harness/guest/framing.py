"""The console channel's framing: a shell command in; its stdout, stderr and exit code out.

The guest end is a plain, non-interactive `sh` reading the second serial port (init.sh).
Everything the host sends is printable ASCII: the command and its stdin travel as base64,
and stdout and stderr come back as base64 lines between marker lines, so no byte of a
payload can be taken for a marker and no byte the tty layer would act on is ever sent.
Every marker carries the command's sequence number: output of an earlier command that
was given up on can never be read as this one's.
"""

import base64
import binascii
import re
from dataclasses import dataclass, field

#: base64 line length: what busybox's base64 writes, and short for the shell's reads.
LINE = 76
#: Files in the guest's /tmp for one command's stdin, stderr and exit code.
IN, ERR, RC = "/tmp/.uh-in", "/tmp/.uh-err", "/tmp/.uh-rc"


def _b64_lines(data: bytes) -> list[str]:
    text = base64.b64encode(data).decode()
    return [text[i : i + LINE] for i in range(0, len(text), LINE)]


def frame(cmd: str, seq: int, stdin: bytes = b"") -> bytes:
    """The text that runs `cmd` under the guest's `sh -c` and frames what it prints."""
    tag = f"@@uh{seq}"
    cmd64 = base64.b64encode(cmd.encode()).decode()
    lines = [f"base64 -d >{IN} <<'{tag}in@@'", *_b64_lines(stdin), f"{tag}in@@"]
    lines.append(
        f"echo {tag}o@@; "
        f'{{ sh -c "$(echo {cmd64} | base64 -d)" <{IN} 2>{ERR}; echo $? >{RC}; }} | base64; '
        f"echo {tag}e@@; base64 <{ERR}; echo {tag}r$(cat {RC})@@; rm -f {IN} {ERR} {RC}"
    )
    return ("\n".join(lines) + "\n").encode()


class FrameError(Exception):
    """The guest's answer is not a well-formed frame (a serial line lost or mangled bytes)."""


@dataclass
class FrameReader:
    """Reads one command's answer as it arrives, in chunks of any size.

    feed() returns the (stream, bytes) pieces each chunk completes, stream being "stdout"
    or "stderr", so output can be shown while the command runs. Text outside the frame
    (the shell's own complaints) is kept in `noise`.
    """

    seq: int
    code: int | None = None  # the exit code, once the closing marker is read
    noise: str = ""
    _stream: str | None = None
    _partial: str = ""
    _markers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tag = f"@@uh{self.seq}"
        self._markers = {f"{tag}o@@": "stdout", f"{tag}e@@": "stderr"}
        self._end = re.compile(rf"{re.escape(tag)}r(\d+)@@")

    @property
    def done(self) -> bool:
        return self.code is not None

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        *lines, self._partial = (self._partial + data.decode("ascii", "replace")).split("\n")
        for raw in lines:
            if self.done:
                self.noise += raw + "\n"
                continue
            line = raw.rstrip("\r")
            if line in self._markers:
                self._stream = self._markers[line]
            elif m := self._end.fullmatch(line):
                self.code, self._stream = int(m.group(1)), None
            elif self._stream is None:
                self.noise += raw + "\n"
            elif line:
                try:
                    out.append((self._stream, base64.b64decode(line, validate=True)))
                except binascii.Error as e:
                    raise FrameError(
                        f"bad base64 on the console channel ({e}): {line[:80]!r}"
                    ) from None
        return out
