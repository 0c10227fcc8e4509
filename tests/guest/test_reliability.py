"""The plugin under stress: a panic, a hang, Ctrl-C and xdist, each in a pytest run of
its own (a generated test file), judged by its exit code, results.json and leftovers."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import guest_flags, our_qemus, wait_gone

pytestmark = pytest.mark.timeout(900)


def inner_pytest(
    settings: dict, tmp_path: Path, body: str, *extra: str, wait: bool = True
) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "test_inner.py").write_text(body)
    results = tmp_path / "results"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(tmp_path / "test_inner.py"),
        "-p",
        "no:cacheprovider",
        # The generated test sits outside the checkout: it opts into the plugin itself.
        "-p",
        "harness.suite.plugin",
        "--rootdir",
        str(tmp_path),
        "--uffd-results",
        str(results),
        *guest_flags(settings, "pytest"),
        *extra,
    ]
    p = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        p.wait(timeout=800)
    return p, results


def load(results: Path) -> dict[str, dict]:
    data = json.loads((results / "results.json").read_text())
    return {t["name"]: t for t in data["tests"]}


PANIC = """
import pytest

pytestmark = pytest.mark.guest

def test_a_panics(guest):
    guest.run("echo c > /proc/sysrq-trigger", timeout=60)

def test_b_next_runs_on_a_new_guest(guest):
    assert guest.run("uname -r", timeout=60).exit_code == 0
"""


def test_panic_fails_its_test_and_next_test_gets_a_new_guest(settings, tmp_path):
    p, results = inner_pytest(settings, tmp_path, PANIC)
    out = p.stdout.read().decode()
    assert p.returncode == 1, out
    tests = load(results)
    panic = tests["test_a_panics"]
    assert panic["outcome"] == "failed", out
    assert "Kernel panic - not syncing: sysrq triggered crash" in [
        c["title"] for c in panic["crashes"]
    ]
    assert tests["test_b_next_runs_on_a_new_guest"]["outcome"] == "passed"
    assert sorted(x.name for x in results.glob("console-*.log")) == [
        "console-main-1.log",
        "console-main-2.log",
    ]
    assert "sysrq triggered crash" in (results / panic["log_slice"]).read_text()


HANG = """
import pytest

pytestmark = pytest.mark.guest

def test_hangs(guest, guest_timeout):
    guest.run("sleep 600", timeout=guest_timeout)
"""


def test_hang_fails_with_a_dump_and_leaves_no_qemu(settings, tmp_path):
    before = set(our_qemus())
    p, results = inner_pytest(settings, tmp_path, HANG, "--uffd-guest-timeout", "5")
    out = p.stdout.read().decode()
    assert p.returncode == 1, out
    assert "hang:" in out and "timed out after 5 s" in out
    assert "sysrq: Show Blocked State" in out, "the SysRq dump is missing"
    assert load(results)["test_hangs"]["outcome"] == "failed"
    assert not wait_gone(set(our_qemus()) - before)


SLOW = """
import pytest

pytestmark = pytest.mark.guest

def test_1_quick(guest):
    assert guest.run("true", timeout=60).exit_code == 0

def test_2_slow(guest):
    guest.run("sleep 300", timeout=600)
"""


def test_sigint_flushes_results_and_stops_guest(settings, tmp_path):
    before = set(our_qemus())
    p, results = inner_pytest(settings, tmp_path, SLOW, "-v", wait=False)
    try:
        deadline = time.monotonic() + 300
        seen = b""
        # Raw reads: -v prints "test_2_slow " with no newline until the test ends.
        while b"test_2_slow" not in seen and time.monotonic() < deadline:
            if select.select([p.stdout], [], [], 1.0)[0]:
                seen += os.read(p.stdout.fileno(), 4096)
        assert b"test_1_quick PASSED" in seen, seen.decode()
        time.sleep(2)
        p.send_signal(signal.SIGINT)
        # Drained while it ends: what it prints on Ctrl-C can exceed a pipe's 64 KiB, and a
        # writer blocked on a full pipe never exits.
        p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0
    assert load(results)["test_1_quick"]["outcome"] == "passed"
    assert not wait_gone(set(our_qemus()) - before)


PARALLEL = """
import pytest

pytestmark = pytest.mark.guest

@pytest.mark.parametrize("n", range(4))
def test_guest_works(guest, n):
    res = guest.run("cat /proc/sys/kernel/random/boot_id", timeout=60)
    assert res.exit_code == 0
"""


@pytest.mark.skipif(os.cpu_count() is None, reason="unknown CPU count")
def test_xdist_two_workers_two_guests(settings, tmp_path):
    p, results = inner_pytest(settings, tmp_path, PARALLEL, "-n", "2")
    out = p.stdout.read().decode()
    assert p.returncode == 0, out
    assert [t["outcome"] for t in load(results).values()] == ["passed"] * 4
    logs = sorted(x.name for x in results.glob("console-*.log"))
    assert logs == ["console-gw0-1.log", "console-gw1-1.log"], logs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_end_uffd_harness_run_like_ctrl_c(settings, tmp_path, sig):
    """A nightly job's timeout sends SIGTERM: the run ends there (not just its current
    test), with its results and summary written and no guest left running."""
    before = set(our_qemus())
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "harness", "run", *guest_flags(settings), "--results"]
    argv += [str(results), "--", "-v", "-p", "no:randomly", "-k", "wp-basic or wp-mprotect"]
    p = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = b""
    try:
        deadline = time.monotonic() + 300
        while b"PASSED" not in seen and time.monotonic() < deadline:
            if select.select([p.stdout], [], [], 1.0)[0]:
                seen += os.read(p.stdout.fileno(), 4096)
        assert b"PASSED" in seen, seen.decode()
        p.send_signal(sig)
        seen += p.communicate(timeout=90)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = seen.decode(errors="replace")
    assert p.returncode == 128 + sig, out[-3000:]
    assert "== uffd-harness summary ==" in out
    outcomes = [t["outcome"] for t in load(results).values()]
    # Stopped after the first passes, long before the 14 cases are done.
    assert "passed" in outcomes and len(outcomes) < 14, outcomes
    assert not wait_gone(set(our_qemus()) - before)


UNBOOTABLE = """
import pytest

pytestmark = pytest.mark.guest

@pytest.mark.parametrize("n", range(4))
def test_needs_a_guest(guest, n):
    pass
"""


def test_a_kernel_that_cannot_boot_stops_costing_boots_after_two(settings, tmp_path):
    before = set(our_qemus())
    # No init in the initramfs, no root fs: the kernel panics, and panic=-1 with
    # -no-reboot ends QEMU.
    cmdline = "rdinit=/nonexistent init=/nonexistent"
    p, results = inner_pytest(settings, tmp_path, UNBOOTABLE, "--uffd-cmdline", cmdline)
    out = p.stdout.read().decode()
    assert p.returncode == 1, out
    tests = list(load(results).values())
    assert [t["outcome"] for t in tests] == ["error"] * 4, out
    assert all("the guest stopped during boot" in t["reason"] for t in tests[:2]), tests
    assert all(
        "not run: the guest failed to boot 2 times in a row" in t["reason"] for t in tests[2:]
    ), tests
    # Two boots, not four; and their work directories are gone with them.
    assert sorted(x.name for x in results.glob("console-*.log")) == [
        "console-main-1.log",
        "console-main-2.log",
    ]
    assert "Kernel panic - not syncing" in (results / "console-main-1.log").read_text()
    # The panics of the boots that failed are session crashes, one per boot's console.
    crashes = json.loads((results / "results.json").read_text())["meta"]["session_crashes"]
    assert [(c["kind"], c["phase"], c["console"]) for c in crashes] == [
        ("panic", "in a boot that failed", f"console-main-{n}.log") for n in (1, 2)
    ], crashes
    assert not wait_gone(set(our_qemus()) - before)


WORKER_DIES = """
import os
import signal

import pytest

pytestmark = pytest.mark.guest

def test_worker_dies(guest):
    guest.run("echo about to lose my worker > /dev/kmsg", timeout=60)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_crashed_xdist_worker_keeps_its_test_as_an_error(settings, tmp_path):
    before = set(our_qemus())
    p, results = inner_pytest(settings, tmp_path, WORKER_DIES, "-n", "1")
    out = p.stdout.read().decode()
    assert p.returncode == 1, out
    (test,) = load(results).values()
    assert test["outcome"] == "error", test
    assert test["reason"].startswith("xdist worker gw0 crashed"), test
    assert "about to lose my worker" in (results / test["log_slice"]).read_text()
    assert 'errors="1"' in (results / "junit.xml").read_text()
    kcidb = json.loads((results / "kcidb.json").read_text())
    assert [t["status"] for t in kcidb["tests"]] == ["ERROR"]
    assert not wait_gone(set(our_qemus()) - before)


ALL_SKIP = """
import pytest

pytestmark = pytest.mark.guest

def test_cannot_run_here(guest):
    pytest.skip("the kernel lacks the feature")
"""


def test_a_run_where_nothing_passed_fails_and_says_why(settings, tmp_path):
    p, results = inner_pytest(settings, tmp_path, ALL_SKIP)
    out = p.stdout.read().decode()
    assert p.returncode == 1, out
    assert "uffd-harness: no case passed (0 passed, 0 failed, 1 skipped, 0 xfailed)" in out
    assert [t["outcome"] for t in load(results).values()] == ["skipped"]
