"""The console channel's framing and its pexpect driver, against a real busybox sh on a
Unix socket standing in for the guest's ttyS1 (the guest runs the same shell, init.sh)."""

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from harness import HarnessError
from harness.guest.framing import FrameError, FrameReader, frame
from harness.guest.serial import SerialChannel
from harness.guest.ssh import CommandTimeout

BUSYBOX = "/bin/busybox"


def guest_sh(data: bytes) -> bytes:
    return subprocess.run([BUSYBOX, "sh"], input=data, capture_output=True, check=True).stdout


def read_all(seq: int, answer: bytes, chunk: int) -> tuple[FrameReader, bytes, bytes]:
    reader, out, err = FrameReader(seq), b"", b""
    for i in range(0, len(answer), chunk):
        for stream, piece in reader.feed(answer[i : i + chunk]):
            if stream == "stdout":
                out += piece
            else:
                err += piece
    return reader, out, err


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_a_command_round_trips_binary_stdin_stdout_stderr_and_exit_code(chunk):
    payload = bytes(range(256)) * 40 + b"\n\r@@uh1r0@@\n"  # markers inside data are data
    cmd = "cat; printf 'to stderr\\n' >&2; exit 42"
    reader, out, err = read_all(1, guest_sh(frame(cmd, 1, payload)), chunk)
    assert (reader.code, out, err) == (42, payload, b"to stderr\n")


def test_quotes_and_newlines_in_the_command_reach_sh_unchanged():
    cmd = "a='it'\"'\"'s'; printf '%s|%s\\n' \"$a\" \"two\nlines\""
    reader, out, _ = read_all(3, guest_sh(frame(cmd, 3)), 4096)
    assert (reader.code, out) == (0, b"it's|two\nlines\n")


def test_an_earlier_commands_answer_is_noise_not_this_ones():
    late = guest_sh(frame("echo late", 4))
    now = guest_sh(frame("echo now", 5))
    reader, out, _ = read_all(5, late + now, 100)
    assert (reader.code, out) == (0, b"now\n")
    assert "@@uh4r0@@" in reader.noise


def test_mangled_base64_is_an_error_not_output():
    answer = guest_sh(frame("echo hello", 6)).replace(b"aGVsbG8K", b"aGV*bG8K")
    with pytest.raises(FrameError, match="bad base64"):
        read_all(6, answer, 4096)


class FakeTty:
    """A Unix socket whose other end is `busybox sh`, as QEMU's chardev and init give."""

    def __init__(self, tmp_path: Path):
        self.path = tmp_path / "chan.sock"
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen(1)
        self.proc: subprocess.Popen | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        self.proc = subprocess.Popen([BUSYBOX, "sh"], stdin=conn.fileno(), stdout=conn.fileno())
        conn.close()

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        self.server.close()


@pytest.fixture
def channel(tmp_path):
    tty = FakeTty(tmp_path)
    chan = SerialChannel(tty.path)
    yield chan
    chan.close()
    tty.stop()


def test_the_channel_runs_commands_in_turn_and_streams_output(channel, tmp_path):
    seen: list[bytes] = []
    res = channel.run("seq 1 3; echo oops >&2; exit 3", 10, on_stdout=seen.append)
    assert (res.exit_code, res.stdout, res.stderr) == (3, b"1\n2\n3\n", b"oops\n")
    assert b"".join(seen) == b"1\n2\n3\n"
    agent = tmp_path / "agent"
    agent.write_bytes(os.urandom(5000))
    remote = tmp_path / "pushed"
    channel.push(agent, str(remote), 0o755)
    assert remote.read_bytes() == agent.read_bytes()
    assert remote.stat().st_mode & 0o777 == 0o755


def test_a_staged_copy_is_copied_in_the_guest_not_sent(channel, tmp_path):
    import hashlib

    agent, staged = tmp_path / "agent", tmp_path / "staged-copy"
    agent.write_bytes(b"\x7fELF agent")
    staged.write_bytes(b"\x7fELF agent")
    digest = hashlib.sha256(agent.read_bytes()).hexdigest()
    remote = tmp_path / "pushed"
    assert channel.push(agent, str(remote), staged={digest: str(staged)}) == digest
    assert remote.read_bytes() == b"\x7fELF agent"
    # A staged copy that is not the file fails the guest-side sha256 check.
    staged.write_bytes(b"something else")
    with pytest.raises(HarnessError, match="sha256 in the guest is"):
        channel.push(agent, str(remote), staged={digest: str(staged)})


def test_a_timed_out_command_leaves_the_channel_refusing_more(channel):
    with pytest.raises(CommandTimeout):
        channel.run("echo started; sleep 30", 1.0)
    assert not channel.alive()
    with pytest.raises(HarnessError, match="console channel unusable .*timed out"):
        channel.run("true", 5)
