"""The pytest11 entry point is loaded into every pytest session of the environment: an
unrelated project's session must run exactly as if uffd-harness were not installed."""

import subprocess
import sys
import textwrap

UNRELATED_CONFTEST = """
import pytest


def pytest_addoption(parser):
    # Option names a hardware or VM project may well have.
    for name in ("--cpu", "--mem", "--smp", "--accel", "--results", "--hugepages",
                 "--guest-timeout", "--timeout-guest", "--fresh-guest"):
        parser.addoption(name, default=None)


def pytest_configure(config):
    config.addinivalue_line("markers", "guest: the project's own marker")


@pytest.fixture
def guest():
    return "their guest"


@pytest.fixture
def agent():
    return "their agent"


@pytest.fixture
def settings():
    return {"theirs": True}
"""

UNRELATED_TEST = """
import sys

import pytest


@pytest.mark.guest
def test_their_fixtures_win(guest, agent, settings, request):
    assert (guest, agent, settings) == ("their guest", "their agent", {"theirs": True})
    assert request.config.getoption("cpu") == "4"
    assert request.config.getoption("results") == "out"


def test_nothing_heavy_was_imported():
    heavy = {"paramiko", "pexpect", "yaml", "harness.suite.plugin", "harness.guest"}
    assert not heavy & set(sys.modules)
"""


def run_pytest(project, *args):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unrelated_project_runs_unchanged(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(UNRELATED_CONFTEST)
    (tmp_path / "test_theirs.py").write_text(textwrap.dedent(UNRELATED_TEST))
    proc = run_pytest(tmp_path, "-q", "--cpu", "4", "--results", "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    # The plugin wrote nothing into their project (no results directory, no logs).
    left = {p.name for p in tmp_path.iterdir()} - {"__pycache__"}
    assert left == {"conftest.py", "pytest.ini", "test_theirs.py"}


def test_kernel_option_is_there_for_every_session(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    proc = run_pytest(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--kernel=" in proc.stdout
