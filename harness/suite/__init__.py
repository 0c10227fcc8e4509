"""The uffd suite as it ships: its test module, pytest plugin and options."""

from pathlib import Path

#: The uffd suite proper (`uffd-harness run`); the harness's own guest tests are in tests/.
SUITE = Path(__file__).resolve().parent / "test_agent.py"
