"""What a guest does while it starts, runs commands and stops, as typed events with host
monotonic timestamps, and the sinks that receive them.

Delivery is explicit: a Guest (and guest_from_settings) takes one `events` sink and calls
it in its own thread. Whoever makes the guest chooses the sink: the CLI passes its
progress printer, the bench's boot figures a list's append, and the suite's pytest plugin
a sink that calls the `pytest_uffd_event` hook, so any plugin of that session (the
bench's timer) subscribes by implementing the hook. pluggy already is a subscriber list
scoped to the session; a process-wide one here would be global state every test has to
reset, and a guest made outside a session would report to listeners it never met.

Kernel builds keep a plain `Progress` sink of free-text lines: a person reading the
terminal is their only consumer, so typing their two dozen messages would buy nothing.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: A sink for (phase, message) lines that nothing but a person reads (kernel builds).
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Event:
    #: Host time.monotonic() when it happened; keyword-only so subclasses list theirs first.
    t: float = field(default_factory=time.monotonic, kw_only=True)


Sink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink of a guest nobody listens to."""


# -- settings resolved (guest_from_settings) -------------------------------------------------


@dataclass(frozen=True)
class KernelChosen(Event):
    path: Path
    release: str


@dataclass(frozen=True)
class KernelWarning(Event):
    text: str  # a config problem the suite will run into (missing uffd options, ...)


@dataclass(frozen=True)
class AccelChosen(Event):
    accel: str  # "kvm" or "tcg"
    reason: str


# -- Guest.start(): image, boot, SSH ---------------------------------------------------------


@dataclass(frozen=True)
class GuestStarting(Event):
    """start() was called; GuestReady ends a start that worked, GuestStop one that failed."""


@dataclass(frozen=True)
class ImageReady(Event):
    initrd: Path
    cached: bool
    seconds: float


@dataclass(frozen=True)
class PvhKernel(Event):
    """The kernel boots through PVH from this uncompressed vmlinux."""

    vmlinux: Path
    seconds: float


@dataclass(frozen=True)
class DriversMissing(Event):
    names: tuple[str, ...]  # optional drivers the kernel lacks


@dataclass(frozen=True)
class SwapPlanned(Event):
    """The swap the host gives the guest, decided from the kernel config."""

    kind: str  # zram | disk (a virtio-blk disk on a host file) | auto | none
    size_mb: int
    text: str  # "virtio-blk disk (256 MiB): no zram (CONFIG_ZRAM is not set)"


@dataclass(frozen=True)
class BootStart(Event):
    """QEMU was spawned (once per attempt: a taken port means another)."""

    pid: int
    port: int
    accel: str
    cpu: str
    smp: int
    mem_mb: int


@dataclass(frozen=True)
class PortTaken(Event):
    port: int  # QEMU could not bind it and exited; the next BootStart tries another


@dataclass(frozen=True)
class QmpReady(Event):
    """QEMU answered on QMP: its own setup is done and the guest CPU runs."""

    pid: int


@dataclass(frozen=True)
class BootLine(Event):
    """One whole console line, stamped when the harness read it, from spawn to READY."""

    text: str


@dataclass(frozen=True)
class SwapReported(Event):
    """The guest's init said which swap it enabled (its console line, without the prefix)."""

    text: str  # "virtio-blk disk /dev/vda 256 MiB on", "WARNING: swap: zram setup failed"


@dataclass(frozen=True)
class BootEnd(Event):
    """The guest's init printed READY."""

    seconds: float  # since the first spawn


@dataclass(frozen=True)
class GuestReady(Event):
    """A channel to the guest is up and the boot token verified: start() returns."""

    channel: str  # "ssh", or "console": the second serial port, when SSH is not there
    port: int  # the SSH port forwarded to the guest
    seconds: float  # of the connection and the check
    why: str = ""  # why the console channel is used


# -- a running guest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Push(Event):
    local: Path
    remote: str
    digest: str  # sha256, verified in the guest
    seconds: float


@dataclass(frozen=True)
class CommandStart(Event):
    cmd: str


@dataclass(frozen=True)
class CommandEnd(Event):
    cmd: str
    seconds: float
    exit_code: int | None  # None: it timed out or the connection failed (see error)
    error: str = ""


@dataclass(frozen=True)
class GuestStop(Event):
    """stop() ended a guest that had been started (reported once per start)."""

    seconds: float  # of the stop itself
    exit_code: int | None  # QEMU's; None when no QEMU had been spawned
    died: bool  # QEMU had exited by itself before stop() was called
