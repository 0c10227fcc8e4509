from pathlib import Path

import pytest

# The guest tests' fixtures and hooks (tests/guest), and the evidence hook's unit tests.
pytest_plugins = ["harness.suite.plugin"]

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA
