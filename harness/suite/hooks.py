"""The hook the suite's plugin calls for other plugins of the session to implement."""

from harness.events import Event


def pytest_uffd_event(event: Event) -> None:
    """A guest of this session emitted `event` (see harness.events); the bench's timer
    implements this to time boots, stops and SSH commands inside each test."""
