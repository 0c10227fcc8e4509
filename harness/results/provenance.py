"""Which uffd-harness produced a result: its version and, from a git checkout, its commit."""

import subprocess
from pathlib import Path

from harness import __version__

PACKAGE = Path(__file__).resolve().parents[1]


def git_commit(where: Path = PACKAGE) -> str | None:
    """HEAD of the git work tree holding the package ("+dirty" when it has changes), or None
    for an installed copy outside any work tree."""
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = head.stdout.split()
    # A package installed into a venv that lives inside some other repository must not
    # report that repository's commit.
    if head.returncode != 0 or len(lines) != 2 or not where.is_relative_to(lines[0]):
        return None
    status = subprocess.run(
        ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no", "--", "."],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return lines[1] + ("+dirty" if status.stdout.strip() else "")


def provenance() -> dict[str, str | None]:
    return {"version": __version__, "commit": git_commit()}


def version_line() -> str:
    commit = git_commit()
    return f"uffd-harness {__version__}" + (f" (git {commit})" if commit else "")
