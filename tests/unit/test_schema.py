"""The settings schema: the flags, pytest options and reproduce lines derived from it say
the same settings back, and pytest's spelling cannot clash with another plugin's."""

import json
import shlex
import subprocess
import sys

import pytest

from harness.cli.main import build_parser
from harness.settings.merge import merge_settings
from harness.settings.options import settings_from_args
from harness.settings.schema import DEFAULTS, GUEST, SETTINGS, SUITE, as_flags
from harness.suite.plugin import reproduce_command

#: Every setting away from its default.
CHANGED = {
    "kernel": "/k/bzImage",
    "accel": "tcg",
    "cpu": "Skylake-Server",
    "smp": 3,
    "mem": "4G",
    "hugepages": "2M:16",
    "host_hugepages": True,
    "panic_on_warn": True,
    "guest_timeout": 42.5,
    "cmdline": "mitigations=off nokaslr",
    "channel": "console",
    "numa": 1,
    "image": "console-only",
}


def test_every_pytest_option_but_kernel_is_prefixed():
    for s in SETTINGS:
        if s.name == "kernel":
            assert (s.flag("pytest"), s.dest("pytest")) == ("--kernel", "kernel")
        else:
            assert s.flag("pytest") == "--uffd-" + s.flag("cli")[2:]
            assert s.dest("pytest") == "uffd_" + s.name
            assert s.dest("cli") == s.name


def test_defaults_cover_every_setting_but_the_file():
    assert set(DEFAULTS) == {s.name for s in (*GUEST, *SUITE)}
    assert DEFAULTS["mem"] == "3G" and DEFAULTS["hugepages"] == "2M:128,1G:1"


@pytest.mark.parametrize("command", ["boot", "agent", "run", "bench"])
def test_cli_flags_say_the_settings_back(command):
    argv = [command, *as_flags(CHANGED, "cli")]
    settings = settings_from_args(build_parser().parse_args(argv))
    assert {k: settings[k] for k in CHANGED} == CHANGED


def test_reproduce_command_keeps_every_guest_setting():
    line = reproduce_command(CHANGED, "/k/bzImage", ["run", "wp-basic", "--mem", "anon"])
    argv = shlex.split(line)
    assert argv[:2] == ["uffd-harness", "agent"]
    for flag in ("--panic-on-warn", "--guest-timeout", "--host-hugepages", "--cpu"):
        assert flag in argv, line
    settings = settings_from_args(build_parser().parse_args(argv[1:]))
    assert {k: settings[k] for k in CHANGED} == CHANGED


def test_flags_win_over_file_over_defaults():
    merged = merge_settings({"smp": "4", "mem": None}, {"smp": 1, "mem": "2G"})
    assert (merged["smp"], merged["mem"], merged["accel"]) == (4, "2G", "auto")


INNER = """
import json

from harness.suite.plugin import session_settings


def test_dump(request):
    print("SETTINGS=" + json.dumps(session_settings(request.config), default=str))
"""


def inner_pytest(tmp_path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(INNER)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.suite.plugin", "-p", "no:cacheprovider"]
        + ["-q", "-s", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pytest_options_say_the_settings_back(tmp_path):
    results, gcov = tmp_path / "out", tmp_path / "gcov"
    suite = {"results": results, "fresh_guest": True, "gcov": gcov, "repeat": 3}
    flags = as_flags({**CHANGED, **suite}, "pytest", SETTINGS)
    proc = inner_pytest(tmp_path, *flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("SETTINGS=")]
    got = json.loads(line.removeprefix("SETTINGS="))
    assert got == {**CHANGED, **suite, "results": str(results), "gcov": str(gcov)}


def test_bad_pytest_option_is_one_usage_error(tmp_path):
    proc = inner_pytest(tmp_path, "--uffd-guest-timeout", "0")
    # pytest's exit code for a bad option (ExitCode.USAGE_ERROR), one ERROR line.
    assert proc.returncode == 4, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert errors == [
        "ERROR: uffd-harness: --uffd-guest-timeout '0': "
        "expected a finite number of seconds > 0, e.g. 300"
    ], proc.stderr
