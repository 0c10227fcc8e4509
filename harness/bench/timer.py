"""The timing plugin inside the bench's own pytest runs: per-test wall time, phases,
report hooks, and the guest's events (starts, stops, SSH commands, pushes), written to a
JSON file.

pytest loads `harness.bench.command` (`-p harness.bench.command`), whose pytest_configure registers
PytestTimer; this module holds the plugin itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pluggy import HookimplMarker

from harness.bench.profile import ssh_kind
from harness.bench.report import AGENT_DURATION
from harness.events import CommandEnd, Event, GuestReady, GuestStarting, GuestStop, Push

# pytest's own marker, without importing pytest into every CLI start.
hookimpl = HookimplMarker("pytest")

TIMING_ENV = "UFFD_BENCH_TIMING"


class PytestTimer:
    """Per-test timings inside the bench's own pytest runs: wall time per test, each
    phase, the hooks after it, every SSH command by kind, guest starts and stops.

    Loaded with `-p harness.bench.command` and TIMING_ENV naming the JSON file to write;
    the guests' events come through the suite plugin's `pytest_uffd_event` hook.
    """

    def __init__(self, path: Path):
        self.path = path
        self.session: dict[str, float] = {}
        self.tests: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.boots = 0
        self._starting: float | None = None  # when the guest start under way began

    @hookimpl(optionalhook=True)
    def pytest_uffd_event(self, event: Event) -> None:
        """The suite plugin's guests report here; each cost goes to the running test."""
        match event:
            case GuestStarting():
                self._starting = event.t
            case GuestReady() | GuestStop() if self._starting is not None:
                # A start ends ready, or stopped because it failed: both took this long.
                self.boots += 1
                self._add("guest_start", event.t - self._starting)
                self._starting = None
            case GuestStop():
                self._add("guest_stop", event.seconds)
            case CommandEnd():
                self._ssh(ssh_kind(event.cmd), event.seconds)
            case Push():
                self._ssh("push", event.seconds)

    def _add(self, key: str, seconds: float) -> None:
        if self.current is not None:
            self.current[key] = self.current.get(key, 0.0) + seconds

    def _ssh(self, kind: str, seconds: float) -> None:
        if self.current is not None:
            self.current["ssh"].append({"kind": kind, "seconds": seconds})

    @hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: Any) -> None:
        self.session["start"] = time.monotonic()

    @hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
        self.current = {
            "name": item.nodeid.split("::", 1)[-1],
            "start": time.monotonic(),
            "phases": {},
            "makereport": {},
            "logreport": {},
            "ssh": [],
        }
        self.tests.append(self.current)
        try:
            return (yield)
        finally:
            self.current["end"] = time.monotonic()
            self.current = None

    # tryfirst makes these the outermost wrappers, so they include the harness plugin's
    # own work after the test (console slice, dmesg, crash parse, results files).
    @hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        t0 = time.monotonic()
        try:
            return (yield)
        finally:
            if self.current is not None:
                self.current["makereport"][call.when] = time.monotonic() - t0

    @hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: Any) -> Any:
        t0 = time.monotonic()
        try:
            return (yield)
        finally:
            if self.current is not None:
                self.current["logreport"][report.when] = time.monotonic() - t0
                self.current["phases"][report.when] = report.duration
                for key, value in report.user_properties:
                    if key == "agent" and isinstance(value, dict):
                        self.current["agent_s"] = value.get(AGENT_DURATION)

    @hookimpl(trylast=True)
    def pytest_unconfigure(self, config: Any) -> None:
        self.session["finish"] = time.monotonic()
        data = {"session": self.session, "tests": self.tests, "boots": self.boots}
        self.path.write_text(json.dumps(data, indent=1) + "\n")
