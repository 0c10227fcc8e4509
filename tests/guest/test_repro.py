"""`uffd-harness repro` on real guests (issue 14): a C reproducer that crashes the kernel on
its second run is stopped there, titled, and with --keep-going its guest is replaced and
the count goes on; one that hangs is caught with the guest's SysRq dump."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import guest_flags, our_qemus, wait_gone

pytestmark = pytest.mark.timeout(600)
DATA = Path(__file__).parent.parent / "data" / "repro"


def repro(settings: dict, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    results = tmp_path / "r"
    argv = [
        sys.executable,
        "-m",
        "harness",
        "repro",
        *guest_flags(settings),
        "--results",
        str(results),
        *args,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=500)
    data = json.loads((results / "repro.json").read_text())
    return proc, data


def test_a_crash_stops_the_count_and_keep_going_replaces_the_guest(settings, tmp_path):
    before = set(our_qemus())
    source = str(DATA / "crash-second-run.c")
    proc, data = repro(settings, tmp_path, source, "--repeat", "3", "--keep-going")
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert [i["outcome"] for i in data["iterations"]] == ["pass", "crash", "pass"]
    assert data["guests"] == 2  # the crashed guest was replaced, the count went on
    assert proc.stdout.startswith(
        f"REPRODUCED: {source}: 1 of 3 iterations failed, first at iteration 2 (crash)"
    )
    assert "Kernel panic - not syncing: sysrq triggered crash" in proc.stdout
    # The crash's console excerpt (up to 40 lines: as many as its slice has).
    assert re.search(r"console, iteration 2 \(last \d+ lines\):\n", proc.stdout), proc.stdout
    assert not wait_gone(set(our_qemus()) - before)


def test_a_hanging_reproducer_is_a_hang_with_the_guests_dump(settings, tmp_path):
    before = set(our_qemus())
    proc, data = repro(
        settings, tmp_path, str(DATA / "hang.c"), "--repeat", "5", "--guest-timeout", "5"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert [i["outcome"] for i in data["iterations"]] == ["hang"]
    assert "timed out after 5 s" in data["iterations"][0]["detail"]
    assert "sysrq: Show Blocked State" in (tmp_path / "r" / "console-1.log").read_text()
    assert not wait_gone(set(our_qemus()) - before)
