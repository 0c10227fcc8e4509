"""A guest whose SSH cannot come up is still tested, over its console channel (issue 12):
the packaged console-only image has no network driver and no SSH server."""

import subprocess
import sys

import pytest

from .helpers import guest_flags, our_qemus, wait_gone
from .test_reliability import HANG, inner_pytest, load

pytestmark = pytest.mark.timeout(600)


def harness(settings: dict, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "harness", *args[:1], *guest_flags(settings), *args[1:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=500)


def test_an_image_without_network_runs_the_agent_suite_over_the_console(settings):
    before = set(our_qemus())
    proc = harness(
        settings, "agent", "--image", "console-only", "--", "suite", "--filter", "wp-basic:anon"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "console: driving the guest over its console channel (ttyS1): the guest has no SSH: "
        "no network device" in proc.stderr
    ), proc.stderr[-3000:]
    assert "wp-basic anon: pass" in proc.stderr
    assert "1 passed, 0 failed" in proc.stdout + proc.stderr
    assert not wait_gone(set(our_qemus()) - before)


def test_a_hang_over_the_console_channel_is_caught_with_a_dump(settings, tmp_path):
    before = set(our_qemus())
    p, results = inner_pytest(
        settings, tmp_path, HANG, "--uffd-guest-timeout", "5", "--uffd-image", "console-only"
    )
    out = p.stdout.read().decode()
    assert p.returncode == 1, out
    assert "hang:" in out and "timed out after 5 s" in out
    assert "sysrq: Show Blocked State" in out, "the SysRq dump is missing"
    assert load(results)["test_hangs"]["outcome"] == "failed"
    hardware = (results / "hardware.json").read_text()
    assert '"guest_channel": "console: the guest has no SSH' in hardware
    assert not wait_gone(set(our_qemus()) - before)
