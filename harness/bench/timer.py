"""The timing plugin inside the bench's own pytest runs: per-test wall time, phases,
report hooks, SSH commands and guest starts and stops, written to a JSON file.

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

# pytest's own marker, without importing pytest into every CLI start.
hookimpl = HookimplMarker("pytest")

TIMING_ENV = "UFFD_BENCH_TIMING"


class PytestTimer:
    """Per-test timings inside the bench's own pytest runs: wall time per test, each
    phase, the hooks after it, every SSH command by kind, guest starts and stops.

    Loaded with `-p harness.bench.command` and TIMING_ENV naming the JSON file to write.
    """

    def __init__(self, path: Path):
        self.path = path
        self.session: dict[str, float] = {}
        self.tests: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.boots = 0
        self._in_guest_start = False
        self._patch()

    def _patch(self) -> None:
        # Wrapping the methods is the only way to see inside a test without changing the
        # code under measurement; the wrappers cost microseconds.
        from harness.guest import guest, ssh

        timer = self
        run, start, stop = ssh.SshSession.run, guest.Guest.start, guest.Guest.stop

        def timed_run(self_: Any, cmd: str, *a: Any, **kw: Any) -> Any:
            t0 = time.monotonic()
            try:
                return run(self_, cmd, *a, **kw)
            finally:
                timer._ssh(cmd, time.monotonic() - t0)

        def timed_start(self_: Any) -> Any:
            t0 = time.monotonic()
            timer._in_guest_start = True
            try:
                return start(self_)
            finally:
                timer._in_guest_start = False
                timer.boots += 1
                timer._add("guest_start", time.monotonic() - t0)

        def timed_stop(self_: Any) -> Any:
            t0 = time.monotonic()
            try:
                return stop(self_)
            finally:
                if not timer._in_guest_start:
                    timer._add("guest_stop", time.monotonic() - t0)

        ssh.SshSession.run = timed_run  # type: ignore[method-assign]
        guest.Guest.start = timed_start  # type: ignore[method-assign]
        guest.Guest.stop = timed_stop  # type: ignore[method-assign]

    def _add(self, key: str, seconds: float) -> None:
        if self.current is not None:
            self.current[key] = self.current.get(key, 0.0) + seconds

    def _ssh(self, cmd: str, seconds: float) -> None:
        if self.current is not None and not self._in_guest_start:
            self.current["ssh"].append({"kind": ssh_kind(cmd), "seconds": seconds})

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
