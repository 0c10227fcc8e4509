"""`uffd-harness kselftest` on Debian's linux-source-6.1: its userfaultfd selftest built
statically and run in a guest for one memory type (anon), one record per case, the agent
peers in the same guest, the side-by-side table. The parts on 2 cores: the partial unpack
~15 s (none when .ci/build-kernel.sh unpacked the tree), the headers and the build ~15 s,
a boot ~10 s, the selftest ~10 s, the peers ~5 s; under a load average of 7 from other
work the selftest alone took 62 s.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO_ROOT, SOURCE_TARBALL, guest_flags

#: What the build reads from the tree (harness/kselftest/build.py): the rest is not unpacked.
MEMBERS = [
    "Makefile",
    "Kbuild",
    "Kconfig",
    "scripts/*",
    "include/uapi/*",
    "arch/x86/*",
    "tools/testing/selftests/*",
    "tools/include/*",
    "mm/gup_test.h",
]


@pytest.fixture(scope="module")
def linux_6_1(tmp_path_factory) -> Path:
    # The tree .ci/build-kernel.sh unpacked (test_built_kernel.py runs before this file):
    # the build only reads it (`make O=<scratch> headers`), and it saves the unpack.
    unpacked = REPO_ROOT / "build/src/linux-source-6.1"
    if (unpacked / "Makefile").is_file() and (REPO_ROOT / "build/src/.unpacked-from").is_file():
        return unpacked
    if not SOURCE_TARBALL.exists():
        reason = f"{SOURCE_TARBALL} missing: `apt-get install linux-source-6.1`"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the kselftest test: {reason}", pytrace=False)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("linux")
    members = [f"linux-source-6.1/{m}" for m in MEMBERS]
    subprocess.run(
        ["tar", "-C", str(root), "-xJf", str(SOURCE_TARBALL), "--wildcards", *members],
        check=True,
        timeout=600,
    )
    return root / "linux-source-6.1"


def test_kselftest_anon_on_linux_6_1(linux_6_1, settings, tmp_path):
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "harness", "kselftest", "--src", str(linux_6_1)]
    argv += ["--mem-types", "anon", "--results", str(results), *guest_flags(settings)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    out = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, out
    data = json.loads((results / "results.json").read_text())
    selftest = {t["name"]: t for t in data["tests"] if t.get("selftest")}
    cases = ["stress", "pagemap-4k", "pagemap-thp", "zeropage", "sigbus", "events"]
    assert sorted(selftest) == sorted(f"kselftest[userfaultfd:anon:{c}]" for c in cases), out
    for t in selftest.values():
        assert t["outcome"] == "passed", t
        assert t["selftest"]["exit_code"] == 0 and t["selftest"]["argv"][1:] == [
            "anon",
            "20",
            "16",
        ]
        assert (results / t["log_slice"]).is_file() and (results / t["dmesg"]).is_file()
    assert (
        "bounces: 0, mode: read"
        in selftest["kselftest[userfaultfd:anon:stress]"]["selftest"]["output"]
    )
    peers = [t for t in data["tests"] if t.get("agent")]
    assert any(t["agent"]["workload"] == "wp-fork-cow" for t in peers), out
    table = (results / "side-by-side.txt").read_text()
    assert "userfaultfd anon: pagemap-4k" in table and "wp-fork-cow@anon" in table
    assert "== side by side" in proc.stdout
    assert data["meta"]["kselftest"]["version"].startswith("6.1.")
