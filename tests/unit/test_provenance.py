import subprocess

import pytest

from harness import __version__
from harness.cli.main import main
from harness.results.provenance import git_commit, provenance


def git(cwd, *args):
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(
        tmp_path,
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    pkg = tmp_path / "harness"
    pkg.mkdir()
    (pkg / "a.py").write_text("1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "y")
    return tmp_path


def test_commit_of_a_checkout_and_dirty_marker(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert git_commit(repo / "harness") == head
    (repo / "harness" / "a.py").write_text("2\n")
    assert git_commit(repo / "harness") == head + "+dirty"


def test_no_commit_outside_a_work_tree(tmp_path):
    assert git_commit(tmp_path) is None


def test_version_flag_and_results_provenance(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"uffd-harness {__version__}")
    assert provenance()["version"] == __version__
