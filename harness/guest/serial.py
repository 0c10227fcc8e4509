"""The console channel: commands run over the guest's second serial port, with pexpect.

QEMU serves the guest's ttyS1 on a Unix socket in the guest's private work dir, and the
guest's init runs a shell on it (init.sh). It needs no network and no SSH server, so a
kernel whose virtio-net or dropbear is broken can still be tested. It runs one command
at a time; a command that times out leaves the shell busy, so the channel refuses further
commands (the harness retires a guest after a hang anyway).
"""

import socket
import threading
import time
from pathlib import Path

import pexpect
import pexpect.fdpexpect

from harness import HarnessError
from harness.guest.framing import FrameError, FrameReader, frame
from harness.guest.ssh import CommandTimeout, RunResult, Sink, push_file


class SerialChannel:
    def __init__(self, path: Path, connect_timeout: float = 10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(connect_timeout)
            self.sock.connect(str(path))
        except OSError as e:
            self.sock.close()
            raise HarnessError(f"console channel: cannot connect to {path}: {e}") from e
        self.sock.setblocking(True)
        self.child = pexpect.fdpexpect.fdspawn(self.sock.fileno(), timeout=None)
        self._seq = 0
        self._lock = threading.Lock()
        #: Why the channel takes no more commands (None: it does).
        self.broken: str | None = None

    def alive(self) -> bool:
        return self.broken is None and self.child.isalive()

    def close(self) -> None:
        if self.broken is None:
            self.broken = "closed"
        self.sock.close()

    def run(
        self,
        cmd: str,
        timeout: float,
        stdin: bytes | None = None,
        on_stdout: Sink | None = None,
        on_stderr: Sink | None = None,
    ) -> RunResult:
        """Run `cmd` under the guest's /bin/sh, as SshSession.run does."""
        with self._lock:
            if self.broken is not None:
                raise HarnessError(f"console channel unusable ({self.broken}); cannot run: {cmd}")
            self._seq += 1
            reader = FrameReader(self._seq)
            start = time.monotonic()
            deadline = start + timeout
            out, err = bytearray(), bytearray()
            sinks = {"stdout": (out, on_stdout), "stderr": (err, on_stderr)}
            try:
                self.child.send(frame(cmd, self._seq, stdin or b""))
                while not reader.done:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.broken = f"`{cmd}` timed out after {timeout:g} s"
                        raise CommandTimeout(cmd, timeout, bytes(out), bytes(err))
                    try:
                        data = self.child.read_nonblocking(65536, timeout=min(left, 1.0))
                    except pexpect.TIMEOUT:
                        continue
                    for stream, piece in reader.feed(data):
                        buf, sink = sinks[stream]
                        buf += piece
                        if sink:
                            sink(piece)
            except pexpect.EOF:
                self.broken = "the guest closed its serial port"
                raise HarnessError(f"console channel lost while running: {cmd}") from None
            except (FrameError, OSError) as e:
                self.broken = str(e)
                raise HarnessError(f"console channel failed while running: {cmd}: {e}") from e
            assert reader.code is not None
            return RunResult(reader.code, bytes(out), bytes(err), time.monotonic() - start)

    def push(
        self,
        local: Path,
        remote: str,
        mode: int = 0o644,
        timeout: float = 300.0,
        staged: dict[str, str] | None = None,
    ) -> str:
        """Copy a file to the guest and verify its sha256 there; return the digest. A
        serial line moves ~20 KB/s into the guest: large files are better `staged`."""
        return push_file(self.run, local, remote, mode, timeout, staged)
