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
    assert lines[1].endswith("python -m pytest")


def test_quick_start_never_pip_installs_into_the_system_python():
    # Debian 12's python3 is externally managed (PEP 668): pip must run from a venv.
    for line in quick_start_lines():
        steps = [s.strip() for s in line.split("&&")]
        assert "python3 -m venv .venv" in steps
        assert not [s for s in steps if re.match(r"(python3 -m )?pip3? ", s)]


def test_ci_runs_both_readme_lines_verbatim_with_debians_python():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    for line in quick_start_lines():
        assert line in ci.splitlines()
    assert "export PATH=/usr/sbin:/usr/bin:/sbin:/bin" in ci.splitlines()
    assert ci.index("export PATH=") < ci.index(quick_start_lines()[0])


def test_ci_fails_when_pytest_collects_nothing():
    assert '"$rc" -eq 5' in (REPO_ROOT / ".ci" / "run").read_text()
