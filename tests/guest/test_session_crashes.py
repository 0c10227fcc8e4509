"""A kernel report that lands outside every test's slice fails the run: one between two
tests, one after the last test. Each runs in a pytest session of its own (a generated
test file), judged by its exit code, results.json and summary.

The report is real and leaves the guest running, on Debian's 6.1 kernel as on ours: a hung
task (tests/data/guest/hung_pipe.c), scheduled by a test to start a second after it
returned, so that it lands after the test's slice was cut; the test's fixture waits in its
teardown until the report is on the console and the task is gone."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import guest_flags, our_qemus, wait_gone
from .test_reliability import inner_pytest, load

pytestmark = pytest.mark.timeout(900)

HUNG_PIPE = Path(__file__).parent.parent / "data" / "guest" / "hung_pipe.c"

INNER = """
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.guest
REPORT = "blocked for more than"


@pytest.fixture
def report_after_the_test(guest):
    before = guest.console.read().count(REPORT)
    guest.push(Path(os.environ["UFFD_HUNG_PIPE"]), "/tmp/hung_pipe", 0o755)
    guest.run("echo 1 > /proc/sys/kernel/hung_task_timeout_secs", timeout=60)
    yield lambda: guest.run(
        "(sleep 1; exec /tmp/hung_pipe 4) >/dev/null 2>&1 </dev/null &", timeout=60
    )
    # The test's slice has been cut: the report lands now, outside every test.
    deadline = time.monotonic() + 120
    while guest.console.read().count(REPORT) == before:
        assert time.monotonic() < deadline, "no hung-task report on the console"
        time.sleep(0.5)
    guest.run("while pidof hung_pipe >/dev/null; do sleep 0.2; done", timeout=60)
    time.sleep(1)  # khungtaskd's last words, if any, are out

{tests}
"""

BETWEEN = INNER.format(
    tests="""
def test_a_schedules_a_hung_task(guest, report_after_the_test):
    report_after_the_test()


def test_b_runs_after_it(guest):
    assert guest.run("true", timeout=60).exit_code == 0
"""
)

AFTER = INNER.format(
    tests="""
def test_a_passes(guest):
    assert guest.run("true", timeout=60).exit_code == 0


def test_b_schedules_a_hung_task_last(guest, report_after_the_test):
    report_after_the_test()
"""
)


@pytest.fixture(scope="module")
def hung_pipe(tmp_path_factory) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for the hung-task helper: apt-get install gcc libc6-dev")
    out = tmp_path_factory.mktemp("hung_pipe") / "hung_pipe"
    subprocess.run(
        [cc, "-static", "-O2", "-pthread", "-Wall", "-Werror", "-o", str(out), str(HUNG_PIPE)],
        check=True,
    )
    return out


def run_inner(settings, tmp_path, body, hung_pipe, monkeypatch, *extra):
    monkeypatch.setenv("UFFD_HUNG_PIPE", str(hung_pipe))
    p, results = inner_pytest(settings, tmp_path, body, *extra)
    out = p.stdout.read().decode()
    meta = json.loads((results / "results.json").read_text())["meta"]
    return p, results, out, meta.get("session_crashes", [])


def test_a_crash_between_two_tests_fails_the_run(settings, tmp_path, hung_pipe, monkeypatch):
    p, results, out, crashes = run_inner(settings, tmp_path, BETWEEN, hung_pipe, monkeypatch)
    tests = load(results)
    # Both tests passed: the report belongs to neither, and still fails the run.
    assert {t["outcome"] for t in tests.values()} == {"passed"}, out
    assert all(not t["crashes"] for t in tests.values()), out
    assert p.returncode == 1, out
    assert crashes, out
    assert {(c["kind"], c["phase"], c["after"], c["before"]) for c in crashes} == {
        (
            "hung-task",
            "between tests",
            "test_a_schedules_a_hung_task",
            "test_b_runs_after_it",
        )
    }, crashes
    assert "kernel crash outside any test, between tests" in out
    summary = (results / "summary.txt").read_text()
    assert "kernel crashes outside any test:" in summary
    assert "INFO: task hung in" in summary


@pytest.mark.parametrize("worker", ["main", "gw0"])
def test_a_crash_after_the_last_test_fails_the_run(
    settings, tmp_path, hung_pipe, monkeypatch, worker
):
    """Under xdist (gw0) the worker has no report left when its guest stops: the crash
    reaches the controller through the worker's workeroutput."""
    xdist = ["-n", "1"] if worker != "main" else []
    p, results, out, crashes = run_inner(settings, tmp_path, AFTER, hung_pipe, monkeypatch, *xdist)
    tests = load(results)
    assert {t["outcome"] for t in tests.values()} == {"passed"}, out
    assert p.returncode == 1, out
    assert crashes, out
    assert {(c["kind"], c["phase"], c["after"]) for c in crashes} == {
        ("hung-task", "after the last test", "test_b_schedules_a_hung_task_last")
    }, crashes
    assert all(c["console"] == f"console-{worker}-1.log" for c in crashes)
    assert "kernel crash outside any test, after the last test" in out


def test_uffd_harness_run_exits_3_on_a_kernel_that_panics_at_boot(settings, tmp_path):
    """End to end through `uffd-harness run`: a kernel that panics while booting (no init)
    leaves every case not run (exit 1 alone) and its panics are kernel crashes: exit 3,
    and the summary lists them."""
    before = set(our_qemus())
    results = tmp_path / "results"
    flags = guest_flags({**settings, "cmdline": "rdinit=/nonexistent init=/nonexistent"})
    argv = [sys.executable, "-m", "harness", "run", *flags, "--results", str(results)]
    argv += ["--", "-p", "no:randomly", "-k", "wp-basic"]
    p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=800)
    out = p.stdout + p.stderr
    assert p.returncode == 3, out[-3000:]
    assert "the kernel crashed (exit 3)" in p.stderr
    summary = p.stdout.split("== uffd-harness summary ==", 1)[1]
    assert "kernel crashes outside any test:" in summary, summary
    assert "Kernel panic - not syncing" in summary and "in a boot that failed" in summary
    assert {t["outcome"] for t in load(results).values()} == {"error"}
    assert not wait_gone(set(our_qemus()) - before)
