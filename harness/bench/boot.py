"""The bench's boot figures: bare boots (the same kernel and guest with a trivial init)
interleaved with boots to SSH ready, each timed from its console as it is written (the
ready ones through their guest's events), and SSH costs on every ready guest."""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.bench.agent import agent_work
from harness.bench.profile import (
    BootRecord,
    boot_difference,
    boot_marks,
    boot_profile,
    kernel_clock,
    ready_record,
)
from harness.bench.report import Figure, ProfileRow, fmt_seconds, median
from harness.bench.run import Bench, timed
from harness.events import Event
from harness.guest.console import ConsoleTail

if TYPE_CHECKING:
    from harness.guest.guest import Guest

# The whole line, so a number still being written is never read half.
BARE_LINE = re.compile(rb"uffd-bench: bare init up ([0-9.]+)\r?\n")


class ConsoleWatch:
    """Notes when each console line first appears (host monotonic time), from a thread,
    so boot stages are timed without touching the boot itself."""

    def __init__(self, path: Path, poll: float = 0.01):
        self.path = path
        self.poll = poll
        self.first_output: float | None = None
        self.lines: list[tuple[float, str]] = []
        self._tail = ConsoleTail(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ConsoleWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self._read()

    def _read(self) -> None:
        new = self._tail.read_new()
        if not new:
            return
        now = time.monotonic()
        if self.first_output is None and new.strip():
            self.first_output = now
        self.lines += [(now, line) for line in self._tail.complete_lines(new)]


BARE_INIT = b"""#!/bin/sh
# uffd-harness bench: the trivial init. One line on the console, then off.
/bin/busybox mount -t proc proc /proc
read up idle < /proc/uptime
echo "uffd-bench: bare init up $up"
/bin/busybox reboot -f
"""


def bare_initramfs(path: Path) -> Path:
    """busybox, a shell link and the trivial init: nothing of the harness's own image."""
    from harness.image import cpio
    from harness.image.initramfs import DEFAULT_RECIPE, load_recipe

    busybox = next(p for p in load_recipe(DEFAULT_RECIPE).binaries if p.name == "busybox")
    entries = [
        cpio.directory("bin"),
        cpio.directory("dev"),
        cpio.directory("proc"),
        cpio.chardev("dev/console", 5, 1),
        cpio.file("bin/busybox", busybox.read_bytes(), 0o755),
        cpio.symlink("bin/sh", "/bin/busybox"),
        cpio.file("init", BARE_INIT, 0o755),
    ]
    with path.open("wb") as out:
        cpio.write(out, entries)
    return path


def bare_boot(template: Guest, kernel_file: Path, initrd: Path, log: Path) -> BootRecord:
    """Same kernel file, accelerator, CPUs, memory and command line as a real boot; only
    the initramfs differs. QEMU exits on the init's `reboot -f` (-no-reboot)."""
    from harness.guest.console import ConsoleLog
    from harness.guest.guest import BOOT_TIMEOUT
    from harness.guest.qemu import LaunchFiles, QemuProcess, build_argv, free_port

    sockdir = Path(tempfile.mkdtemp(prefix="uffd-bench-"))  # socket paths must stay short
    try:
        files = LaunchFiles(kernel_file, initrd, log, sockdir / "qmp.sock")
        argv = build_argv(
            template.spec, files, free_port(), secrets.token_hex(16), template.backing
        )
        with ConsoleWatch(log) as watch:
            spawn = time.monotonic()
            with QemuProcess(argv, sockdir / "qemu.stderr", files.qmp_socket) as qemu:
                qemu.connect_qmp()  # as a real boot does, so both pay for it
                qmp = time.monotonic()
                found = ConsoleLog(log).wait_for(
                    [BARE_LINE], BOOT_TIMEOUT[template.spec.accel], keep_going=qemu.alive
                )
                end = time.monotonic()
                if found is None:
                    raise RuntimeError(
                        f"the trivial init printed nothing (QEMU {qemu.stderr_text() or 'ok'}); "
                        f"console: {ConsoleLog(log).tail(5)}"
                    )
        m = BARE_LINE.search(found.text.encode())
        return BootRecord(
            "bare",
            spawn,
            end,
            first_output=watch.first_output,
            qmp=qmp,
            lines=watch.lines,
            uptime=float(m.group(1)) if m else None,
        )
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def ready_boot(b: Bench, log: Path) -> tuple[BootRecord, Guest]:
    """Boot to SSH ready with the token verified, timed by the guest's own events; the
    caller stops the guest."""
    from harness.guest.guest import guest_from_settings

    events: list[Event] = []
    guest = guest_from_settings(b.settings, console_log=log, events=events.append)
    try:
        guest.start()
    except BaseException:
        guest.stop()
        guest.cleanup()
        raise
    return ready_record(events), guest


def kernel_log(guest: Guest, rec: BootRecord) -> None:
    """The kernel log of the boot, read after it (the ring buffer holds every level)."""
    rec.dmesg = guest.run("dmesg", timeout=60).stdout.decode(errors="replace")


def ssh_costs(guest: Guest, runs: int) -> dict[str, list[float]]:
    """A fresh SSH connection (handshake, auth) and a trivial command's round trip."""
    from harness.guest.ssh import connect
    from harness.image.sshkeys import client_key

    assert guest.image
    key, _ = client_key()
    out: dict[str, list[float]] = {"connect": [], "true": []}
    for _ in range(runs):
        t0 = time.monotonic()
        session = connect(guest.port, guest.image.host_key, key, timeout=60.0)
        out["connect"].append(time.monotonic() - t0)
        session.close()
        out["true"].append(timed(lambda: guest.run("true", timeout=30)))
    return out


def measure_boots(b: Bench) -> None:
    from harness.kernel.image import pvh_vmlinux

    template = b.template
    kernel_file = pvh_vmlinux(template.kernel, _cache_root()) or template.kernel.path
    logs = b.workdir / "boots"
    logs.mkdir(parents=True, exist_ok=True)
    initrd = bare_initramfs(logs / "bare-initramfs.cpio")
    f_bare = b.figure("boot.bare", "bare boot (spawn -> trivial init's line)")
    f_ready = b.figure("boot.ready", "boot to ready (spawn -> SSH up, token verified)")
    records: list[BootRecord] = []
    ssh: dict[str, list[float]] = {"connect": [], "true": []}
    # Interleaved, so load from other work on the machine falls on both alike.
    for i in range(1, b.runs + 1):
        b.sample(f_bare, lambda i=i: _bare(b, template, kernel_file, initrd, logs, i, records))
        b.sample(f_ready, lambda i=i: _ready(b, logs, i, records, ssh))
        b.say(
            "boot",
            f"run {i}/{b.runs}: bare {fmt_seconds(_last(f_bare))}, "
            f"ready {fmt_seconds(_last(f_ready))}",
        )
    b.profiles["boot"] = boot_profile(records)
    b.profiles["boot.diff"] = boot_difference(records)
    b.profiles["ssh"] = [
        ProfileRow("fresh SSH connection: TCP, key exchange, auth", median(ssh["connect"])),
        ProfileRow("SSH command round trip (`true`)", median(ssh["true"])),
        *b.ssh_rows,
    ]
    b.meta["boots"] = [_boot_json(r) for r in records]


def _last(f: Figure) -> float | None:
    return f.samples[-1] if f.samples else None


def _cache_root() -> Path:
    from harness.host.cache import cache_root

    return cache_root()


def _bare(
    b: Bench, template: Guest, kernel_file: Path, initrd: Path, logs: Path, i: int, out: list
) -> float:
    rec = bare_boot(template, kernel_file, initrd, logs / f"bare-{i}.console.log")
    out.append(rec)
    return rec.total


def _ready(b: Bench, logs: Path, i: int, out: list, ssh: dict[str, list[float]]) -> float:
    rec, guest = ready_boot(b, logs / f"ready-{i}.console.log")
    try:
        out.append(rec)
        kernel_log(guest, rec)
        for k, v in ssh_costs(guest, 2).items():
            ssh[k] += v
        if i == 1:
            agent_work(b, guest)
    finally:
        guest.stop()
        guest.cleanup()
    return rec.total


def _boot_json(r: BootRecord) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "total": r.total,
        "marks": boot_marks(r),
        "kernel_clock_at_init": kernel_clock(r),
    }
