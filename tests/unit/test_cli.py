import os
import subprocess
import sys

import pytest

from harness.cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=60
    )


def test_non_kernel_exits_2_with_one_line(tmp_path):
    res = run_cli("boot", "--kernel", "/etc/passwd", "--", "true")
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert errors == [
        "uffd-harness: error: /etc/passwd: not an x86 bzImage (no boot header magic 0xAA55/HdrS)"
    ]


def test_missing_kernel_exits_2(tmp_path):
    res = run_cli("boot", "--kernel", str(tmp_path / "nope"), "--", "true")
    assert res.returncode == 2 and "no such file" in res.stderr


def test_arm64_image_exits_2(tmp_path):
    image = tmp_path / "Image"
    data = bytearray(8192)
    data[0x38:0x3C] = b"ARM\x64"
    image.write_bytes(bytes(data))
    res = run_cli("boot", "--kernel", str(image), "--", "true")
    assert res.returncode == 2 and "arm64" in res.stderr


def test_bad_hugepages_exit_2(data_dir):
    res = run_cli(
        "boot",
        "--kernel",
        str(data_dir / "bzImage-6.1.0-56-amd64.head"),
        "--hugepages",
        "3M:1",
        "--",
        "true",
    )
    assert res.returncode == 2 and "2M and 1G" in res.stderr


def test_run_writes_no_bytecode_into_the_package(tmp_path, monkeypatch):
    # pytest's rewritten *-pytest-*.pyc files would outlive an uninstall of the package.
    seen = {}

    def fake_main(argv):
        seen["flag"] = sys.dont_write_bytecode
        seen["env"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
        return pytest.ExitCode.NO_TESTS_COLLECTED

    monkeypatch.setattr(pytest, "main", fake_main)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    before = sys.dont_write_bytecode
    assert main(["run", "--results", str(tmp_path / "r")]) == 1
    assert seen == {"flag": True, "env": "1"}
    assert sys.dont_write_bytecode == before
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ


def test_run_uses_the_suites_own_pytest_configuration(tmp_path, monkeypatch):
    # A results directory inside a checkout made pytest take the checkout's pyproject.toml.
    seen = {}
    monkeypatch.setattr(pytest, "main", lambda argv: seen.setdefault("argv", argv) and 5)
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntimeout = 1\n")
    monkeypatch.chdir(tmp_path)
    main(["run", "--results", "results/x"])
    argv = seen["argv"]
    ini = argv[argv.index("-c") + 1]
    assert ini.endswith("harness/suite/pytest.ini") and os.path.isfile(ini)
    assert argv[argv.index("--rootdir") + 1] == os.path.dirname(ini)


# `uffd-harness run`'s exit codes (README: "Exit codes")
A = {"name": "a", "outcome": "passed", "duration": 1.0, "reason": "", "crashes": []}
PASSED = {"meta": {}, "tests": [A]}
CRASHED_IN_A_TEST = {"meta": {}, "tests": [{**A, "crashes": [{"title": "WARNING"}]}]}
CRASHED_OUTSIDE = {"meta": {"session_crashes": [{"title": "BUG: x"}]}, "tests": PASSED["tests"]}


@pytest.mark.parametrize(
    "pytest_rc, data, code",
    [
        (pytest.ExitCode.OK, PASSED, 0),
        (pytest.ExitCode.TESTS_FAILED, PASSED, 1),
        (pytest.ExitCode.NO_TESTS_COLLECTED, None, 1),
        (pytest.ExitCode.USAGE_ERROR, None, 2),
        (pytest.ExitCode.INTERNAL_ERROR, PASSED, 2),
        (pytest.ExitCode.TESTS_FAILED, CRASHED_IN_A_TEST, 3),
        (pytest.ExitCode.TESTS_FAILED, CRASHED_OUTSIDE, 3),
        # A crash outside the tests fails the run even where pytest's own status is OK.
        (pytest.ExitCode.OK, CRASHED_OUTSIDE, 3),
        (pytest.ExitCode.INTERRUPTED, CRASHED_IN_A_TEST, 143),
        (pytest.ExitCode.INTERRUPTED, None, 143),
    ],
)
def test_run_exit_codes(pytest_rc, data, code):
    from harness.cli.main import run_exit_code

    assert run_exit_code(int(pytest_rc), data, 143) == code


def test_run_exits_3_and_says_so_when_the_results_hold_a_crash(tmp_path, monkeypatch, capsys):
    import json

    results = tmp_path / "r"

    def fake_main(argv):
        (results / "results.json").write_text(json.dumps(CRASHED_OUTSIDE))
        return pytest.ExitCode.TESTS_FAILED

    monkeypatch.setattr(pytest, "main", fake_main)
    assert main(["run", "--results", str(results)]) == 3
    err = capsys.readouterr()
    assert "the kernel crashed (exit 3)" in err.err
    assert "kernel crashes outside any test" in err.out
