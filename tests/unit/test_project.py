"""The README's Quick start and CI must not drift apart."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def quick_start_lines() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "Quick start has no sh code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands():
    lines = quick_start_lines()
    assert len(lines) == 2
    assert lines[0].endswith("uffd-harness run")
    assert "pytest" in lines[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert quick_start_lines()[1] in ci


def test_ci_fails_when_pytest_collects_nothing():
    assert '"$rc" -eq 5' in (REPO_ROOT / ".ci" / "run").read_text()
