import json
import xml.etree.ElementTree as ET

import pytest

from harness.results.formats import OUTSIDE_TESTS, summary_text, to_json, to_junit, to_kcidb
from harness.results.hardware import hardware_fingerprint
from harness.results.record import TestRecord, count_line
from harness.results.rundir import RunDir

CPUINFO = "model name\t: Test CPU @ 2GHz\nflags\t\t: fpu sse2 avx2\nmodel name\t: second\n"


def records() -> list[TestRecord]:
    return [
        TestRecord("agent[wp-basic-anon]", "passed", 1.5),
        TestRecord(
            "agent[wp-fork-cow-hugetlb-private]",
            "xfailed",
            2.0,
            reason="mm/hugetlb: fix uffd-wp during fork()",
        ),
        TestRecord(
            "agent[wp-zap-shmem]",
            "failed",
            0.5,
            reason="wp fault missing",
            crashes=[
                {
                    "kind": "warning",
                    "title": "WARNING in mwriteprotect_range",
                    "text": "WARNING: CPU: 0 PID: 1 at mm/userfaultfd.c:1",
                }
            ],
            reproduce="uffd-harness agent -- run wp-zap --mem shmem",
        ),
        TestRecord("agent[wp-thp-anon-thp]", "skipped", 0.1, reason="THP disabled"),
    ]


def test_count_line():
    assert count_line(records()) == "1 passed, 1 failed, 1 skipped, 1 xfailed"
    extra = [*records(), TestRecord("x", "xpassed", 0), TestRecord("y", "error", 0)]
    assert count_line(extra).endswith(", 1 xpassed, 1 error")


def test_bad_outcome_rejected():
    with pytest.raises(ValueError):
        TestRecord("x", "ok", 0)


def test_junit():
    root = ET.fromstring(to_junit(records()).split("?>", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "2")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases["agent[wp-zap-shmem]"].find("failure")
    assert failure is not None and "WARNING in mwriteprotect_range" in failure.text
    assert cases["agent[wp-basic-anon]"].find("failure") is None
    skipped = cases["agent[wp-fork-cow-hugetlb-private]"].find("skipped")
    assert skipped is not None and "xfailed" in skipped.get("message")


def test_junit_has_a_failed_case_for_crashes_outside_the_tests():
    crash = {"kind": "hung-task", "title": "INFO: task hung in pipe_read", "text": "INFO: task"}
    crash.update(console="console-main-1.log", phase="between tests", after="a", before="b")
    root = ET.fromstring(to_junit(records(), session_crashes=[crash, crash]).split("?>", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("5", "2")
    (case,) = [c for c in suite.findall("testcase") if c.get("name") == OUTSIDE_TESTS]
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "kernel crash: INFO: task hung in pipe_read"
    assert "between tests (after a, before b); console-main-1.log" in (failure.text or "")
    # None outside the tests: no such case.
    assert OUTSIDE_TESTS not in to_junit(records())


def test_kcidb():
    doc = json.loads(to_kcidb(records(), {"kernel": {"release": "6.1.0-56-amd64"}}, "run1"))
    assert doc["version"]["major"] == 4
    build = doc["builds"][0]
    assert build["checkout_id"] == doc["checkouts"][0]["id"]
    statuses = [t["status"] for t in doc["tests"]]
    assert statuses == ["PASS", "FAIL", "FAIL", "SKIP"]
    assert doc["tests"][1]["misc"]["expected"] is True
    assert doc["tests"][2]["misc"]["crashes"] == ["WARNING in mwriteprotect_range"]
    assert all(t["build_id"] == build["id"] and t["origin"] == "uffd_harness" for t in doc["tests"])


def test_run_dir_keeps_every_record_and_valid_files(tmp_path):
    run = RunDir(tmp_path / "r", {"run_id": "x"}, "x")
    for i, rec in enumerate(records(), start=1):
        run.add(rec)
        lines = (tmp_path / "r" / "results.jsonl").read_text().splitlines()
        assert [json.loads(ln)["name"] for ln in lines] == [r.name for r in records()[:i]]
        # The full files exist from the first record on and are always valid.
        json.loads((tmp_path / "r" / "results.json").read_text())
        ET.fromstring((tmp_path / "r" / "junit.xml").read_text().split("?>", 1)[1])
    run.flush()
    assert len(json.loads((tmp_path / "r" / "results.json").read_text())["tests"]) == 4
    assert not list((tmp_path / "r").glob(".*"))  # no temporary files left


def test_hardware_fingerprint():
    hw = hardware_fingerprint("tcg", "no vmx", "max", {"release": "6.1"}, cpuinfo=CPUINFO)
    assert hw["host"]["cpu_model"] == "Test CPU @ 2GHz"
    assert hw["host"]["cpu_flags"] == ["fpu", "sse2", "avx2"]
    assert (hw["accel"], hw["guest_cpu"]) == ("tcg", "max")


def test_summary_table():
    recs = records()
    for r, (w, m) in zip(
        recs,
        [
            ("wp-basic", "anon"),
            ("wp-fork-cow", "hugetlb-private"),
            ("wp-zap", "shmem"),
            ("wp-basic", "shmem"),
        ],
        strict=True,
    ):
        r.agent = {"workload": w, "mem": m}
    text = summary_text(recs)
    lines = text.splitlines()
    header = lines[0].split()
    assert header == ["workload", "anon", "hugetlb-private", "shmem"]
    assert lines[1].split() == ["wp-basic", "pass", "-", "skip"]
    assert lines[2].split() == ["wp-fork-cow", "-", "xfail", "-"]
    assert "WARNING in mwriteprotect_range  (agent[wp-zap-shmem])" in text
    assert "reproduce: uffd-harness agent -- run wp-zap --mem shmem" in text
    assert text.rstrip().endswith("1 passed, 1 failed, 1 skipped, 1 xfailed")


def test_a_results_directory_is_held_by_one_run(tmp_path):
    import subprocess
    import sys

    from harness import UsageError
    from harness.results.rundir import lock_run_dir

    held = lock_run_dir(tmp_path / "r")
    try:
        with pytest.raises(UsageError, match=r"is in use by another run \(pid \d+"):
            lock_run_dir(tmp_path / "r")
        # A second `uffd-harness run` on it stops before doing anything, in one line.
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "run", "--results", str(tmp_path / "r")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "is in use by another run" in proc.stderr
        assert not (tmp_path / "r" / "results.jsonl").exists()
    finally:
        held.close()
    # Released with its file (and by the kernel when a run dies, however it dies).
    lock_run_dir(tmp_path / "r").close()


def test_a_stop_signal_waits_for_the_result_being_kept():
    import os
    import signal

    from harness.results.rundir import signals_deferred

    class Stop(Exception):
        pass

    def raise_stop(signum, frame):
        raise Stop

    import threading

    old = signal.signal(signal.SIGTERM, raise_stop)
    go, sent = threading.Event(), threading.Event()

    def other_thread():  # like the SSH transport's: the kernel may pick it for the signal
        go.wait(10)
        os.kill(os.getpid(), signal.SIGTERM)
        sent.set()

    helper = threading.Thread(target=other_thread)
    helper.start()
    kept = []
    try:
        with pytest.raises(Stop), signals_deferred():
            go.set()
            sent.wait(10)
            for _ in range(1000):  # bytecodes at which a handler would run
                kept.append("record")
        assert len(kept) == 1000
    finally:
        helper.join()
        signal.signal(signal.SIGTERM, old)


def test_results_honour_the_umask_and_reach_the_disk(tmp_path, monkeypatch):
    import os
    import stat

    from harness.results.record import TestRecord
    from harness.results.rundir import RunDir

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd)
    )
    old = os.umask(0o027)
    try:
        run = RunDir(tmp_path / "r", {}, "id")
        run.add(TestRecord("t", "passed", 0.1))
        run.flush()
    finally:
        os.umask(old)
    for name in ("results.jsonl", "results.json", "junit.xml", "kcidb.json", "summary.txt"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o640, name
    assert str(tmp_path / "r" / "results.jsonl") in synced
    assert str(tmp_path / "r") in synced  # the directory entries too
    assert any(".results.json." in s for s in synced)  # before its rename


def test_repeated_cases_are_counted_and_mixed_outcomes_are_flaky_never_a_pass():
    def rec(name, outcome, mem="anon"):
        return TestRecord(name, outcome, 0.1, agent={"workload": "wp-basic", "mem": mem})

    recs = [
        rec("test_agent[wp-basic-anon~1]", "passed"),
        rec("test_agent[wp-basic-anon~2]", "failed"),
        rec("test_agent[wp-basic-anon~3]", "passed"),
        rec("test_agent[wp-basic-shmem~1]", "passed", "shmem"),
        rec("test_agent[wp-basic-shmem~2]", "passed", "shmem"),
        rec("test_agent[wp-basic-shmem~3]", "passed", "shmem"),
    ]
    text = summary_text(recs)
    assert text.splitlines()[1].split() == ["wp-basic", "FLAKY", "2/3", "pass", "x3"]
    assert "  wp-basic:anon: 3 runs: 2 passed, 1 failed" in text
    cases = json.loads(to_json(recs, {}))["cases"]
    assert cases["wp-basic:anon"] == {"runs": 3, "passed": 2, "failed": 1, "verdict": "flaky"}
    assert cases["wp-basic:shmem"] == {"runs": 3, "passed": 3, "verdict": "passed"}
    # A run without --repeat has no per-case block.
    assert "cases" not in json.loads(to_json(recs[:1], {}))


def test_kcidb_output_is_valid_against_kcidb_io_schema():
    """The schema of the kcidb-io package (KCIDB's own I/O library), not our reading of it:
    every outcome, a crash, an error, a selftest record, and session crashes."""
    from kcidb_io import schema

    recs = [
        *records(),
        TestRecord("x", "xpassed", 0.2, reason="known bug gone"),
        TestRecord("y", "error", 0.0, reason="guest died"),
        TestRecord(
            "kselftest[userfaultfd:anon:zeropage]",
            "failed",
            1.0,
            selftest={"binary": "userfaultfd", "mem": "anon", "case": "zeropage"},
        ),
    ]
    meta = {
        "kernel": {"release": "6.1.0-57-amd64", "path": "/boot/vmlinuz-6.1.0-57-amd64"},
        "session_crashes": [{"title": "BUG: soft lockup", "phase": "between tests", "text": "x"}],
    }
    doc = json.loads(to_kcidb(recs, meta, "run1"))
    schema.V4_3.validate(doc)
    schema.LATEST.validate(schema.LATEST.upgrade(doc))
    broken = {**doc, "tests": [{**doc["tests"][0], "status": "GREEN"}]}
    with pytest.raises(Exception, match="GREEN"):
        schema.V4_3.validate(broken)
