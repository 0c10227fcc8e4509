"""Where a result was obtained: the host, QEMU, the accelerator, the guest CPU and kernel,
and the harness itself."""

import os
import platform
from pathlib import Path

from harness.guest.qemu import qemu_version
from harness.host.cpuinfo import parse_cpuinfo
from harness.results.provenance import provenance


def hardware_fingerprint(
    accel: str, accel_reason: str, guest_cpu: str, kernel: dict, cpuinfo: str | None = None
) -> dict:
    """Where a result was obtained: enough to know whether a rerun is comparable."""
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    cpu = parse_cpuinfo(cpuinfo)
    return {
        "harness": provenance(),
        "host": {
            "cpu_model": cpu.model,
            "cpu_flags": list(cpu.flags),
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "qemu": qemu_version() or "unknown",
        "accel": accel,
        "accel_reason": accel_reason,
        "guest_cpu": guest_cpu,
        "kernel": kernel,
    }
