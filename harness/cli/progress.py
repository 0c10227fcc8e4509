"""Progress on stderr: '[  1.23s] phase: message' for each event worth a line, timed from
the command's start."""

import sys
import time

from harness.events import (
    AccelChosen,
    BootEnd,
    BootStart,
    CommandEnd,
    CommandStart,
    DriversMissing,
    Event,
    GuestReady,
    GuestStop,
    ImageReady,
    KernelChosen,
    KernelWarning,
    PortTaken,
    Push,
    PvhKernel,
    SwapPlanned,
    SwapReported,
)


def describe(e: Event) -> list[tuple[str, str]]:
    """The (phase, message) lines an event prints; none for the fine-grained ones
    (console lines, QMP greeting, start requested)."""
    match e:
        case KernelChosen():
            return [("kernel", f"{e.path}: {e.release}")]
        case KernelWarning():
            return [("kernel", f"WARNING: {e.text}")]
        case AccelChosen():
            return [("accel", e.reason)]
        case ImageReady():
            how = "cached" if e.cached else "built"
            return [("image", f"{how} {e.initrd} in {e.seconds:.2f} s")]
        case PvhKernel():
            return [("image", f"PVH boot from {e.vmlinux} ({e.seconds:.2f} s)")]
        case DriversMissing():
            return [("image", "kernel lacks optional drivers: " + ", ".join(e.names))]
        case SwapPlanned():
            return [("swap", e.text)]
        case SwapReported():
            return [("swap", f"guest: {e.text}")]
        case BootStart():
            return [
                (
                    "boot",
                    f"QEMU pid {e.pid} ({e.accel}, -cpu {e.cpu}, {e.smp} CPUs, "
                    f"{e.mem_mb} MiB), ssh port {e.port}",
                )
            ]
        case PortTaken():
            return [("boot", f"port {e.port} was taken, retrying")]
        case BootEnd():
            return [("boot", f"guest ready in {e.seconds:.2f} s")]
        case GuestReady(channel="console"):
            return [
                ("console", f"driving the guest over its console channel (ttyS1): {e.why}"),
                ("console", f"connected, boot token verified in {e.seconds:.2f} s"),
            ]
        case GuestReady():
            return [("ssh", f"connected, boot token verified in {e.seconds:.2f} s")]
        case Push():
            return [("push", f"{e.local} -> {e.remote} (sha256 {e.digest[:12]} verified)")]
        case CommandStart():
            return [("run", e.cmd)]
        case CommandEnd() if e.exit_code is None:
            return [("run", f"no exit code after {e.seconds:.2f} s: {e.error}")]
        case CommandEnd():
            return [("run", f"exit code {e.exit_code} after {e.seconds:.2f} s")]
        case GuestStop():
            died = [("guest", f"QEMU exited (code {e.exit_code}): the guest died")]
            return [*(died if e.died else []), ("stop", "guest stopped")]
    return []


class Clock:
    """The CLI's event sink; say() prints a line no event stands for (kernel build steps,
    the CLI's own)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, event: Event) -> None:
        for phase, message in describe(event):
            self._print(event.t, phase, message)

    def say(self, phase: str, message: str) -> None:
        self._print(time.monotonic(), phase, message)

    def _print(self, t: float, phase: str, message: str) -> None:
        print(f"[{t - self.t0:6.2f}s] {phase}: {message}", file=sys.stderr, flush=True)
