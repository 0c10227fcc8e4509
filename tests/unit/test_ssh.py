"""SshSession.run against a scripted transport: refused exec requests and lost links
become HarnessErrors, never paramiko exceptions escaping into pytest's hooks."""

import paramiko
import pytest

from harness import HarnessError
from harness.guest.ssh import SshSession


class FakeChannel:
    def __init__(self, refuse: bool, out: bytes = b"ok\n", code: int = 0):
        self.refuse, self.out, self.code = refuse, out, code
        self.closed = False

    def exec_command(self, cmd: str) -> None:
        if self.refuse:
            raise paramiko.SSHException("Channel closed.")

    def shutdown_write(self) -> None:
        pass

    def recv_ready(self) -> bool:
        return bool(self.out)

    def recv(self, n: int) -> bytes:
        data, self.out = self.out, b""
        return data

    def recv_stderr_ready(self) -> bool:
        return False

    def exit_status_ready(self) -> bool:
        return True

    def recv_exit_status(self) -> int:
        return self.code

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    def __init__(self, channels: list[FakeChannel], active: bool = True):
        self.channels, self.active, self.opened = channels, active, []

    def open_session(self, timeout: float) -> FakeChannel:
        chan = self.channels.pop(0)
        self.opened.append(chan)
        return chan

    def is_active(self) -> bool:
        return self.active


def session(transport: FakeTransport) -> SshSession:
    s = SshSession.__new__(SshSession)
    s.port, s.transport = 2222, transport  # type: ignore[assignment]
    return s


def test_a_refused_exec_is_retried_once_on_a_new_channel():
    t = FakeTransport([FakeChannel(refuse=True), FakeChannel(refuse=False, code=3)])
    res = session(t).run("dmesg -c", timeout=5)
    assert (res.exit_code, res.stdout) == (3, b"ok\n")
    assert [c.closed for c in t.opened] == [True, True]


def test_an_exec_refused_twice_is_a_harness_error_naming_the_command():
    t = FakeTransport([FakeChannel(refuse=True), FakeChannel(refuse=True)])
    with pytest.raises(HarnessError, match=r"refused to run 'dmesg -c'.*connection still up"):
        session(t).run("dmesg -c", timeout=5)
    assert len(t.opened) == 2


def test_a_lost_connection_is_not_retried():
    t = FakeTransport([FakeChannel(refuse=True), FakeChannel(refuse=False)], active=False)
    with pytest.raises(HarnessError, match="connection lost"):
        session(t).run("true", timeout=5)
    assert len(t.opened) == 1


def test_open_session_failure_is_a_harness_error():
    class Dead(FakeTransport):
        def open_session(self, timeout: float) -> FakeChannel:
            raise paramiko.SSHException("SSH session not active")

    with pytest.raises(HarnessError, match="cannot open a channel for: true"):
        session(Dead([])).run("true", timeout=5)
