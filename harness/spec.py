"""What a guest is: the GuestSpec dataclass and the parsing of its flags."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import UsageError

_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}

#: Guest RAM kept below 4G when 1G pages are asked for (see qemu.build_argv).
LOW_RAM_MB_WITH_1G = 1024
#: Early boot allocations that land at the top of RAM, next to the 1G pages.
HIGH_RESERVE_MB = 128

#: Room the guest kernel, its initramfs and userspace need outside the hugepage pools.
GUEST_RESERVE_MB = 256


def parse_size_mb(text: str, what: str = "size") -> int:
    """'3G' -> 3072, '512M' -> 512, '512' -> 512 (MiB)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise UsageError(f"{what} {text!r} is not a size; expected e.g. 512M or 3G")
    mb = int(m.group(1)) * _UNITS[(m.group(2) or "M").upper()]
    if mb < 1 or mb != int(mb):
        raise UsageError(f"{what} {text!r} must be a whole number of MiB")
    return int(mb)


def parse_hugepages(text: str) -> dict[int, int]:
    """'2M:64,1G:1' -> {2048: 64, 1048576: 1} (page size in KiB -> count)."""
    pools: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        size, sep, count = part.partition(":")
        if not sep or not count.strip().isdigit():
            raise UsageError(f"--hugepages entry {part!r}: expected SIZE:COUNT, e.g. 2M:64,1G:1")
        kb = parse_size_mb(size, "hugepage size") * 1024
        if kb not in (2048, 1024 * 1024):
            raise UsageError(f"--hugepages size {size!r}: x86_64 supports 2M and 1G hugepages")
        if kb in pools:
            raise UsageError(f"--hugepages: size {size} given twice")
        pools[kb] = int(count)
    return pools


def format_pagesize(kb: int) -> str:
    return f"{kb // (1024 * 1024)}G" if kb >= 1024 * 1024 else f"{kb // 1024}M"


@dataclass
class GuestSpec:
    kernel: Path
    accel: str = "tcg"  # resolved: "kvm" or "tcg"
    cpu: str | None = None  # None: "max" under TCG, "host" under KVM
    smp: int = 2
    mem_mb: int = 2048
    hugepages: dict[int, int] = field(default_factory=lambda: {2048: 64})
    host_hugepages: bool = False
    extra_cmdline: list[str] = field(default_factory=list)

    @property
    def cpu_model(self) -> str:
        return self.cpu or ("host" if self.accel == "kvm" else "max")

    def validate(self) -> None:
        if self.smp < 1:
            raise UsageError(f"--smp {self.smp}: need at least 1 CPU")
        pool_mb = sum(kb * n for kb, n in self.hugepages.items()) // 1024
        if pool_mb + GUEST_RESERVE_MB > self.mem_mb:
            pools = ",".join(f"{format_pagesize(kb)}:{n}" for kb, n in self.hugepages.items())
            raise UsageError(
                f"--hugepages {pools} needs {pool_mb} MiB but --mem is {self.mem_mb} MiB; "
                f"the guest needs about {GUEST_RESERVE_MB} MiB besides its pools: "
                f"use --mem {pool_mb + GUEST_RESERVE_MB}M or more, or fewer hugepages"
            )
        giant = self.hugepages.get(1024 * 1024, 0)
        need = LOW_RAM_MB_WITH_1G + giant * 1024 + HIGH_RESERVE_MB
        if giant and self.mem_mb < need:
            raise UsageError(
                f"--hugepages 1G:{giant} needs --mem {need}M or more: 1G pages are carved from "
                f"whole gigabytes above the first {LOW_RAM_MB_WITH_1G} MiB of guest RAM"
            )
