"""The uffd suite as it ships: its test module, pytest plugin and options."""

import contextlib
import os
import sys
from collections.abc import Iterator
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


@contextlib.contextmanager
def no_bytecode_writes() -> Iterator[None]:
    """pytest rewrites the asserts of the harness package (its plugin's) and caches them as
    `*-pytest-*.pyc` beside the sources: in an installed package, files pip never recorded.
    They survive an uninstall, and the `harness/` directory they keep makes a later
    `pip install -e` import `harness` as an empty namespace package. Nothing is written,
    here and in xdist workers (the environment variable)."""
    saved = sys.dont_write_bytecode, os.environ.get("PYTHONDONTWRITEBYTECODE")
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        yield
    finally:
        sys.dont_write_bytecode = saved[0]
        if saved[1] is None:
            del os.environ["PYTHONDONTWRITEBYTECODE"]
        else:
            os.environ["PYTHONDONTWRITEBYTECODE"] = saved[1]


def run_pytest(argv: list[str]) -> int:
    """pytest.main in this process, writing no bytecode beside the package."""
    import pytest

    with no_bytecode_writes():
        return int(pytest.main(argv))
