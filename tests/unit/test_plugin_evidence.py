"""The report hook attaches a test's kernel evidence; when collecting it fails, that test
fails with the reason instead of pytest aborting the whole session (INTERNALERROR)."""

from types import SimpleNamespace

import pluggy
import pytest

from harness import HarnessError
from harness.results.rundir import RunDir
from harness.suite import plugin as pytest_plugin


class FakeConsole:
    def __init__(self, text: str | Exception):
        self.text = text

    def offset(self) -> int:
        return 0 if isinstance(self.text, Exception) else len(self.text)

    def read(self, start: int = 0, end: int | None = None) -> str:
        if isinstance(self.text, Exception):
            raise self.text
        return self.text[start:end]


class FakeGuest:
    def __init__(self, console: FakeConsole, dmesg: bytes | Exception):
        self.console, self.dmesg = console, dmesg
        self.ssh = SimpleNamespace(alive=lambda: True)

    def alive(self) -> bool:
        return True

    def run(self, cmd: str, timeout: float):
        assert cmd == "dmesg -c"
        if isinstance(self.dmesg, Exception):
            raise self.dmesg
        return SimpleNamespace(stdout=self.dmesg)


def report_for(tmp_path, guest: FakeGuest, outcome: str = "passed") -> pytest.TestReport:
    pool = SimpleNamespace(pending_meta={}, agent=None, end_test=lambda guest, end, nodeid: None)
    stash = pytest.Stash()
    stash[pytest_plugin._SLICE] = (guest, 0, pool)
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[pytest_plugin._RUN] = RunDir(tmp_path, {}, "run")
    item = SimpleNamespace(
        nodeid="tests/guest/test_x.py::test_x",
        stash=stash,
        config=config,
        get_closest_marker=lambda name: None,
    )
    report = pytest.TestReport(item.nodeid, ("x", 0, "x"), {}, outcome, None, "call")
    hook = pytest_plugin.pytest_runtest_makereport(item, SimpleNamespace(excinfo=None))
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(pluggy.Result.from_call(lambda: report))
    return report


def test_evidence_is_attached(tmp_path):
    report = report_for(tmp_path, FakeGuest(FakeConsole("boot\n"), b"ring\n"))
    props = dict(report.user_properties)
    assert report.passed
    assert (tmp_path / props["log_slice"]).read_text() == "boot\n"
    assert (tmp_path / props["dmesg"]).read_bytes() == b"ring\n"


def test_a_crash_on_the_console_fails_a_passing_test(tmp_path):
    oops = (
        "------------[ cut here ]------------\n"
        "WARNING: CPU: 0 PID: 1 at mm/userfaultfd.c:1 mwriteprotect_range+0x1/0x2\n"
    )
    report = report_for(tmp_path, FakeGuest(FakeConsole(oops), b""))
    assert report.failed
    assert "WARNING in mwriteprotect_range" in str(report.longrepr)


def test_dmesg_that_cannot_be_read_is_recorded_and_the_test_keeps_its_outcome(tmp_path):
    guest = FakeGuest(FakeConsole(""), HarnessError("SSH: the guest refused to run 'dmesg -c'"))
    report = report_for(tmp_path, guest)
    assert report.passed
    assert dict(report.user_properties)["dmesg_error"].startswith("SSH: the guest refused")
    assert ("dmesg not collected", "SSH: the guest refused to run 'dmesg -c'") in report.sections


def test_a_broken_evidence_step_fails_only_this_test(tmp_path):
    report = report_for(tmp_path, FakeGuest(FakeConsole(RuntimeError("console gone")), b""))
    assert report.failed
    assert "could not collect this test's kernel evidence: RuntimeError: console gone" in str(
        report.longrepr
    )
