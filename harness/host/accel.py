"""Is KVM really usable here? Decide between KVM and TCG, with the reason."""

import os
from dataclasses import dataclass
from pathlib import Path

from harness.host.cpuinfo import parse_cpuinfo
from harness.settings.values import ACCELS


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # "kvm" or "tcg"
    reason: str
    forced: bool = False


def cpu_virt_flags(cpuinfo: str) -> set[str]:
    """The hardware-virtualization flags (vmx, svm) the host CPU advertises."""
    return {"vmx", "svm"} & set(parse_cpuinfo(cpuinfo).flags)


def kvm_opens_rw(kvm_path: Path) -> tuple[bool, str]:
    try:
        fd = os.open(kvm_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False, f"{kvm_path} does not exist"
    except OSError as e:
        return False, f"{kvm_path} cannot be opened read-write ({e.strerror})"
    os.close(fd)
    return True, f"{kvm_path} opens read-write"


def choose_accel(
    requested: str = "auto",
    cpuinfo_path: Path = Path("/proc/cpuinfo"),
    kvm_path: Path = Path("/dev/kvm"),
) -> AccelChoice:
    """KVM only when /dev/kvm opens read-write AND the CPU has vmx/svm; else TCG.

    A /dev/kvm without vmx/svm exists on some hosts (nested setups that expose the device
    but not the extension): a guest kernel stalls under it, so auto must not take it.
    """
    if requested not in ACCELS:
        raise ValueError(f"accel must be one of {', '.join(ACCELS)}, not {requested!r}")
    if requested == "tcg":
        return AccelChoice("tcg", "TCG requested with --accel tcg", forced=True)
    if requested == "kvm":
        return AccelChoice("kvm", "KVM forced with --accel kvm", forced=True)
    flags = cpu_virt_flags(cpuinfo_path.read_text(errors="replace"))
    ok, kvm_note = kvm_opens_rw(kvm_path)
    if not ok:
        return AccelChoice("tcg", f"using TCG: {kvm_note}")
    if not flags:
        return AccelChoice(
            "tcg",
            f"using TCG: {kvm_note} but the CPU advertises neither vmx nor svm "
            "(not hardware virtualization); force with --accel kvm if you know better",
        )
    return AccelChoice("kvm", f"using KVM: {kvm_note} and the CPU has {'/'.join(sorted(flags))}")
