"""The report hook attaches a test's kernel evidence; when collecting it fails, that test
fails with the reason instead of pytest aborting the whole session (INTERNALERROR)."""

from pathlib import Path
from types import SimpleNamespace

import pluggy
import pytest

from harness import HarnessError
from harness.results.rundir import RunDir
from harness.suite import plugin as pytest_plugin


class FakeConsole:
    path = Path("console-main-1.log")

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

    def alive(self) -> bool:
        return True

    def reachable(self) -> bool:
        return True

    def run(self, cmd: str, timeout: float):
        assert cmd == "dmesg -c"
        if isinstance(self.dmesg, Exception):
            raise self.dmesg
        return SimpleNamespace(stdout=self.dmesg)


def report_for(
    tmp_path, guest: FakeGuest, outcome: str = "passed", pool_out: dict | None = None
) -> pytest.TestReport:
    pool = SimpleNamespace(
        pending_meta={},
        agent=None,
        end_test=lambda guest, end, nodeid: None,
        session_crashes=[],
        settings={"gcov": None},
    )
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
    if pool_out is not None:
        pool_out["pool"] = pool
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


def test_a_kmemleak_scan_line_in_a_slice_fails_the_run_not_the_test(tmp_path):
    """kmemleak's scan thread reports leaks made at any time before: not this test's."""
    line = "[  612.3] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"
    stash_holder: dict = {}
    report = report_for(tmp_path, FakeGuest(FakeConsole(line), b""), pool_out=stash_holder)
    assert report.passed
    assert not [v for k, v in report.user_properties if k == "crash"]
    (crash,) = stash_holder["pool"].session_crashes
    assert (crash["title"], crash["phase"], crash["during"]) == (
        "kmemleak: new suspected memory leaks",
        "kmemleak scan while a test ran",
        "test_x",
    )
