"""SSH to the guest with paramiko: pinned host key, key-only login, run and push."""

import base64
import hashlib
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness import HarnessError

Sink = Callable[[bytes], None]


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration: float


class CommandTimeout(HarnessError):
    def __init__(self, cmd: str, timeout: float, stdout: bytes, stderr: bytes):
        self.stdout, self.stderr = stdout, stderr
        super().__init__(f"command timed out after {timeout:g} s in the guest: {cmd}")


class HostKeyMismatch(HarnessError):
    pass


def _pinned_key(line: str) -> paramiko.PKey:
    kind, blob = line.split()[:2]
    if kind != "ssh-ed25519":
        raise HarnessError(f"pinned host key must be ssh-ed25519, not {kind}")
    return paramiko.Ed25519Key(data=base64.b64decode(blob))


class SshSession:
    """One authenticated connection to root@127.0.0.1:port."""

    def __init__(self, port: int, host_key: str, client_key: Path, connect_timeout: float = 10.0):
        self.port = port
        sock = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
        self.transport = paramiko.Transport(sock)
        try:
            self.transport.start_client(timeout=connect_timeout)
            offered = self.transport.get_remote_server_key()
            # Never accept an unknown key: the guest's key was made with its image, so any
            # other key means another machine answers on this port.
            if offered != _pinned_key(host_key):
                raise HostKeyMismatch(
                    f"host key of 127.0.0.1:{port} is {offered.get_name()} "
                    f"{offered.get_base64()[:24]}..., not the pinned key of this guest image; "
                    "something other than our guest answers on that port"
                )
            self.transport.auth_publickey(
                "root", paramiko.Ed25519Key.from_private_key_file(str(client_key))
            )
        except BaseException:
            self.transport.close()
            raise

    def close(self) -> None:
        self.transport.close()

    def alive(self) -> bool:
        return self.transport.is_active()

    def run(
        self,
        cmd: str,
        timeout: float,
        stdin: bytes | None = None,
        on_stdout: Sink | None = None,
        on_stderr: Sink | None = None,
    ) -> RunResult:
        """Run `cmd` under the guest's /bin/sh; output is collected and optionally streamed.

        Raises CommandTimeout (with the output so far) when it does not finish in time.
        """
        start = time.monotonic()
        chan = self._exec(cmd, timeout)
        out, err = bytearray(), bytearray()
        try:
            if stdin is not None:
                view = memoryview(stdin)
                while view:
                    sent = chan.send(view[:32768])
                    view = view[sent:]
                chan.shutdown_write()
            else:
                chan.shutdown_write()
            deadline = start + timeout
            while True:
                drained = False
                while chan.recv_ready():
                    data = chan.recv(65536)
                    out += data
                    if on_stdout:
                        on_stdout(data)
                    drained = True
                while chan.recv_stderr_ready():
                    data = chan.recv_stderr(65536)
                    err += data
                    if on_stderr:
                        on_stderr(data)
                    drained = True
                if (
                    chan.exit_status_ready()
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                ):
                    break
                if time.monotonic() > deadline:
                    raise CommandTimeout(cmd, timeout, bytes(out), bytes(err))
                if not self.transport.is_active():
                    raise HarnessError(f"SSH connection lost while running: {cmd}")
                if not drained:
                    select.select([chan], [], [], 0.05)
            code = chan.recv_exit_status()
            if code == -1:  # the channel closed without an exit status
                raise HarnessError(f"SSH connection lost while running: {cmd} (no exit status)")
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise HarnessError(f"SSH failed while running: {cmd}: {e or type(e).__name__}") from e
        finally:
            chan.close()
        return RunResult(code, bytes(out), bytes(err), time.monotonic() - start)

    def _exec(self, cmd: str, timeout: float) -> paramiko.Channel:
        """A channel running `cmd`. A server that refuses the exec request has not started
        the command, so that is retried once on a new channel before it counts."""
        failure: Exception | None = None
        for _ in range(2):
            try:
                chan = self.transport.open_session(timeout=timeout)
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise HarnessError(f"SSH: cannot open a channel for: {cmd}: {e}") from e
            try:
                chan.exec_command(cmd)
                return chan
            except (paramiko.SSHException, EOFError, OSError) as e:
                chan.close()
                failure = e
                if not self.transport.is_active():
                    break
        state = "still up" if self.transport.is_active() else "lost"
        raise HarnessError(
            f"SSH: the guest refused to run {cmd!r} ({failure}; connection {state}); "
            "its console log may say why"
        ) from failure

    def push(
        self,
        local: Path,
        remote: str,
        mode: int = 0o644,
        timeout: float = 120.0,
        staged: dict[str, str] | None = None,
    ) -> str:
        """Copy a file to the guest and verify its sha256 there; return the digest."""
        return push_file(self.run, local, remote, mode, timeout, staged)

    def shell(self) -> int:
        """An interactive shell on the caller's terminal; returns its exit status."""
        import shutil
        import termios
        import tty

        chan = self.transport.open_session()
        interactive = sys.stdin.isatty()
        if interactive:
            cols, rows = shutil.get_terminal_size()
            chan.get_pty(term="xterm", width=cols, height=rows)
        chan.invoke_shell()
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if interactive else None
        inputs: list = [chan, fd]
        try:
            if interactive:
                tty.setraw(fd)
            while True:
                ready, _, _ = select.select(inputs, [], [])
                if chan in ready:
                    data = chan.recv(65536)
                    if not data:
                        break
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
                if fd in ready:
                    data = os.read(fd, 4096)
                    if data:
                        chan.sendall(data)
                    else:  # end of our input: let the remote shell see it and finish
                        chan.shutdown_write()
                        inputs = [chan]
        finally:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        code = chan.recv_exit_status()
        chan.close()
        return code


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def push_file(
    run: Callable[..., RunResult],
    local: Path,
    remote: str,
    mode: int,
    timeout: float,
    staged: dict[str, str] | None = None,
) -> str:
    """Copy a file to the guest through `run` (a channel's) and verify its sha256 there.

    `staged` maps sha256 digests to copies the guest already holds (in its initramfs):
    such a file is copied inside the guest instead of sent."""
    data = local.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    tmp = f"{remote}.part"
    q = _quote
    source = (staged or {}).get(digest)
    res = run(
        f"{f'cp {q(source)}' if source else 'cat >'} {q(tmp)} && chmod {mode:o} {q(tmp)} "
        f"&& mv {q(tmp)} {q(remote)} && sha256sum {q(remote)}",
        timeout,
        stdin=None if source else data,
    )
    got = res.stdout.decode(errors="replace").split()[:1]
    if res.exit_code != 0:
        raise HarnessError(f"push {local} -> {remote} failed: {res.stderr.decode().strip()}")
    if got != [digest]:
        raise HarnessError(
            f"push {local} -> {remote}: sha256 in the guest is {got[0] if got else '?'}, "
            f"expected {digest}"
        )
    return digest


def connect(
    port: int,
    host_key: str,
    client_key: Path,
    timeout: float,
    keep_going: Callable[[], bool] = lambda: True,
) -> SshSession:
    """Retry until the guest's SSH server answers, the deadline passes, or keep_going()
    turns false. A host key mismatch is never retried."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline and keep_going():
        try:
            return SshSession(
                port,
                host_key,
                client_key,
                connect_timeout=max(1.0, min(10.0, deadline - time.monotonic())),
            )
        except HostKeyMismatch:
            raise
        except (OSError, EOFError, paramiko.SSHException) as e:
            last = e
            time.sleep(0.2)
    raise HarnessError(f"SSH to 127.0.0.1:{port} failed: {last or 'guest stopped'}")
