"""results/<run-id>/: where a run's files go, written atomically as the run goes, so an
interrupted run leaves valid files for what finished."""

import datetime as dt
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import IO

from harness import UsageError
from harness.host.cache import fsync_dir, publish
from harness.results.formats import summary_text, to_json, to_junit, to_kcidb
from harness.results.html import Section, report_html
from harness.results.record import TestRecord


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


#: The signals that end a run (each raised as an exception in the main thread).
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP back while a result is being kept: they are delivered
    (and end the run) as soon as the block is done, never half-way through it.

    Python runs signal handlers in the main thread whichever thread the kernel picked (the
    SSH transport has threads of its own), so the handlers are swapped for one that only
    notes the signal, and a noted signal is raised again once the real ones are back."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it runs them
        return
    pending: list[int] = []
    saved = {
        sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
        for sig in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


def lock_run_dir(root: Path) -> IO[str]:
    """Hold `root` for this run until the returned file is closed (or the process ends,
    however it ends: the kernel drops the lock, so none is ever left stale). Two runs in
    one directory would mix their results.jsonl lines and overwrite each other's files."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        f = (root / ".lock").open("a+")
    except OSError as e:
        raise UsageError(f"--results {root}: cannot use it ({e.strerror})") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise UsageError(
            f"--results {root} is in use by another run ({holder}); wait for it to end or "
            "give another --results directory"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}, started {dt.datetime.now():%Y-%m-%d %H:%M:%S}\n")
    f.flush()
    return f


class RunDir:
    """results/<run-id>/ and its files: results.jsonl gets a line per test as it ends;
    results.json and the derived files are rewritten at most every FULL_FLUSH_S seconds
    and by flush() at the end, since rewriting them all after every test cost more than
    the rest of the harness's per-test work (~90 ms at 100 tests)."""

    FULL_FLUSH_S = 10.0

    def __init__(self, root: Path, meta: dict, run_id: str | None = None):
        self.run_id = run_id or new_run_id()
        self.root = root
        self.meta = meta
        self.records: list[TestRecord] = []
        self._last_full = 0.0

    def add(self, record: TestRecord) -> None:
        self.records.append(record)
        if record.reproduce and record.outcome in ("failed", "xpassed", "error"):
            name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in record.name)
            script = self.root / "reproduce" / f"{name}.sh"
            text = f"#!/bin/sh\n# {record.name}: {record.outcome}\nexec {record.reproduce}\n"
            publish(script, text, 0o777)
        # One appended line per test is O(1) and survives even a SIGKILL; the full files
        # are rewritten at most every FULL_FLUSH_S and at the end (Ctrl-C included).
        self.root.mkdir(parents=True, exist_ok=True)
        jsonl = self.root / "results.jsonl"
        new = not jsonl.exists()
        with jsonl.open("a") as f:
            f.write(json.dumps(asdict(record), separators=(",", ":")) + "\n")
            # A power cut after this test must not take its line with it.
            f.flush()
            os.fsync(f.fileno())
        if new:
            fsync_dir(self.root)
        if time.monotonic() - self._last_full >= self.FULL_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Write every file now (the end of a run, interrupted or not, calls this)."""
        self._last_full = time.monotonic()
        files = {
            "results.json": to_json(self.records, self.meta),
            "junit.xml": to_junit(self.records, session_crashes=self.meta.get("session_crashes")),
            "kcidb.json": to_kcidb(self.records, self.meta, self.run_id),
            "summary.txt": summary_text(
                self.records,
                self.root,
                self.meta.get("session_crashes"),
                self.meta.get("hardware", {}).get("guest_channel", "ssh"),
            ),
        }
        files["report.html"] = report_html(
            f"uffd-harness run {self.run_id}",
            [Section(f"run {self.run_id}", self.records, self.meta, self.root)],
        )
        if "hardware" in self.meta:
            files["hardware.json"] = json.dumps(self.meta["hardware"], indent=2) + "\n"
        for name, text in files.items():
            publish(self.root / name, text, durable=True)
