# The uffd suite's fixtures and hooks, for sessions that collect the shipped suite
# (`uffd-harness run`, `pytest --pyargs harness.suite`).
pytest_plugins = ["harness.suite.plugin"]
