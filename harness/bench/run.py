"""One bench run's state (options, log directory, what it found) and the helpers its
measurements time with."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.bench.profile import top_functions
from harness.bench.report import Figure, ProfileRow
from harness.events import Progress

if TYPE_CHECKING:
    from harness.guest.guest import Guest


def timed(fn: Callable[[], object]) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def profiled(fn: Callable[[], object]) -> list[ProfileRow]:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(fn)
    return top_functions(pstats.Stats(prof).stats)  # type: ignore[attr-defined]


@dataclass
class Bench:
    """One bench run: its options, where its logs go, and what it found."""

    settings: dict[str, Any]
    runs: int
    tests: int
    suite_runs: int
    sections: tuple[str, ...]
    workdir: Path
    case: tuple[str, str] | None
    stress_seconds: int
    stress_threads: int
    say: Progress
    figures: list[Figure] = field(default_factory=list)
    profiles: dict[str, list[ProfileRow]] = field(default_factory=dict)
    stress: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    agent_names: dict[str, list[str]] | None = None
    #: (Layout, built binaries) of a kernel tree's selftests, for their stress figures.
    kselftest: tuple[Any, Path] | None = None
    ssh_rows: list[ProfileRow] = field(default_factory=list)

    def figure(self, key: str, label: str) -> Figure:
        f = Figure(key, label)
        self.figures.append(f)
        return f

    def sample(self, f: Figure, fn: Callable[[], float]) -> None:
        """Add one sample; a failure is kept on the figure and stops its further runs."""
        if f.error:
            return
        try:
            f.samples.append(fn())
        except Exception as e:  # noqa: BLE001 - any failure is a figure's error, reported
            f.error = f"{type(e).__name__}: {e}"
            self.errors.append(f"{f.label}: {f.error}")

    @functools.cached_property
    def template(self) -> Guest:
        """A Guest with this run's settings, never started: kernel, accelerator, spec."""
        from harness.guest.guest import guest_from_settings

        return guest_from_settings(self.settings)
