"""The agent in a guest: pushed once per guest, called with a timeout, JSON parsed.

A call that outlives its timeout is a hang: the guest's blocked tasks and CPU backtraces
are taken from the console (SysRq through QMP) before anyone kills it.
"""

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness import HarnessError
from harness.guest.guest import Guest, GuestHang
from harness.guest.ssh import CommandTimeout, RunResult

REMOTE_PATH = "/tmp/uffd-agent"
#: The agent's exit code for a usage error (0, 1 and 4 are kselftest's pass, fail, skip).
EXIT_USAGE = 2
DMESG_MARK = "@@uffd-harness: dmesg@@"


@dataclass
class AgentResult:
    args: list[str]
    exit_code: int
    data: object  # the JSON value the agent printed (object for run, array for suite)
    stderr: str
    duration: float


class AgentError(HarnessError):
    pass


def parse_output(stdout: str) -> tuple[object, str]:
    """The first JSON value in the agent's stdout and the text after it."""
    text = stdout.lstrip()
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise AgentError(f"agent printed no JSON ({e.msg} at {e.pos}): {text[:300]!r}") from None
    return value, text[end:].strip()


def run_with_dmesg(guest: Guest, cmd: str, timeout: float) -> tuple[RunResult, str, str, str]:
    """Run a shell command in the guest; (result, stdout, stderr, the kernel log written
    meanwhile, read and cleared). A command that outlives `timeout` is a GuestHang that
    carries the guest's SysRq dump and the command's partial stdout.

    The kernel log comes back in the same round trip, after a marker on stderr: a second
    SSH exec per test costs ~90 ms under TCG."""
    wrapped = f'{cmd}; rc=$?; echo "{DMESG_MARK}" >&2; dmesg -c >&2; exit $rc'
    try:
        res = guest.run(wrapped, timeout)
    except CommandTimeout as e:
        raise GuestHang(
            cmd, timeout, guest.hang_dump(), e.stdout.decode(errors="replace")
        ) from None
    stdout = res.stdout.decode(errors="replace")
    stderr, _, dmesg = res.stderr.decode(errors="replace").partition(f"{DMESG_MARK}\n")
    return res, stdout, stderr, dmesg


class AgentSession:
    def __init__(self, guest: Guest, binary: Path):
        self.guest = guest
        self.binary = binary
        self.digest = guest.push(binary, REMOTE_PATH, 0o755)
        self._features: dict | None = None
        #: Kernel log read (and cleared) by calls since the last take_dmesg(); None: no call.
        self.dmesg: str | None = None

    def call(self, args: list[str], timeout: float) -> AgentResult:
        cmd = shlex.join([REMOTE_PATH, *args])
        res, stdout, stderr, dmesg = run_with_dmesg(self.guest, cmd, timeout)
        self.dmesg = (self.dmesg or "") + dmesg
        if res.exit_code == EXIT_USAGE:
            raise AgentError(f"agent usage error for {cmd}: {stderr.strip()}")
        try:
            data, _ = parse_output(stdout)
        except AgentError as e:
            detail = f"exit code {res.exit_code}; stderr: {stderr.strip()[:500]}"
            raise AgentError(f"{e} ({detail})") from None
        return AgentResult(args, res.exit_code, data, stderr, res.duration)

    def take_dmesg(self) -> str | None:
        text, self.dmesg = self.dmesg, None
        return text

    def features(self, timeout: float = 60.0) -> dict:
        if self._features is None:
            data = self.call(["features"], timeout).data
            if not isinstance(data, dict):
                raise AgentError(
                    f"`uffd-agent features` printed {type(data).__name__}, not an object"
                )
            self._features = data
        return self._features

    def run(self, workload: str, mem: str, timeout: float, extra: list[str] = ()) -> AgentResult:
        res = self.call(["run", workload, "--mem", mem, *extra], timeout)
        if not isinstance(res.data, dict) or "status" not in res.data:
            raise AgentError(f"`uffd-agent run {workload} --mem {mem}` printed no result object")
        return res
