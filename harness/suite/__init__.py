"""The uffd suite as it ships: its test module, pytest plugin and options."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The uffd suite proper (`uffd-harness run`); the harness's own guest tests are in tests/.
SUITE = HERE / "test_agent.py"


def suite_args() -> list[str]:
    """pytest arguments that run the shipped suite with its own configuration, wherever the
    package lives: pytest would otherwise look for a configuration file above the common
    ancestor of its arguments, among which it counts option values that name existing
    paths (`--uffd-results DIR`), and find the user's, or a checkout's pyproject.toml."""
    return [str(SUITE), "-c", str(HERE / "pytest.ini"), "--rootdir", str(HERE)]
