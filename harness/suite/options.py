"""The pytest11 entry point: uffd-harness's command-line options, and nothing else.

pytest loads this module into every session in the environment, so it adds options only
(no fixtures, no hooks that act on tests) and imports nothing heavy. Every option but
--kernel is spelled --uffd-* (dest uffd_*), so it cannot clash with another plugin's
--mem or --cpu (see harness.settings.schema). The fixtures and hooks live in
harness.suite.plugin, which a session opts into: the shipped suite's conftest, the
checkout's tests/conftest.py, or `-p harness.suite.plugin`.
"""

import pytest

from harness.settings.schema import SETTINGS, add_options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("uffd-harness", "uffd-harness guests")
    add_options(group.addoption, "pytest", SETTINGS)
