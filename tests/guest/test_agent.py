"""The uffd suite (shipped in the package as harness/suite/test_agent.py), collected here
too so `pytest tests/guest` runs it beside the harness's own guest tests."""

from harness.suite.test_agent import pytest_generate_tests, test_agent  # noqa: F401
