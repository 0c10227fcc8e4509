"""What a guest is: the GuestSpec dataclass, made from checked settings, and its limits."""

from dataclasses import dataclass, field
from pathlib import Path

from harness import UsageError
from harness.settings.schema import DEFAULTS
from harness.settings.values import format_pagesize, parse_hugepages, parse_size_mb

#: Guest RAM kept below 4G when 1G pages are asked for (see qemu.build_argv).
LOW_RAM_MB_WITH_1G = 1024
#: Early boot allocations that land at the top of RAM, next to the 1G pages.
HIGH_RESERVE_MB = 128

#: RAM of each NUMA node after the first: room for the pages a workload migrates there.
NUMA_NODE_MB = 512

#: Room the guest kernel, its initramfs and userspace need outside the hugepage pools.
GUEST_RESERVE_MB = 256


@dataclass
class GuestSpec:
    kernel: Path
    accel: str = "tcg"  # resolved: "kvm" or "tcg"
    cpu: str | None = None  # None: "max" under TCG, "host" under KVM
    smp: int = DEFAULTS["smp"]  # type: ignore[assignment]
    mem_mb: int = parse_size_mb(str(DEFAULTS["mem"]))
    hugepages: dict[int, int] = field(
        default_factory=lambda: parse_hugepages(str(DEFAULTS["hugepages"]))
    )
    host_hugepages: bool = False
    numa_nodes: int = DEFAULTS["numa"]  # type: ignore[assignment]
    extra_cmdline: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: dict[str, object], kernel: Path, accel: str) -> "GuestSpec":
        """The spec of merged settings (checked by the schema), with the resolved kernel
        and accelerator; the cross-checks of validate() still apply."""
        spec = cls(
            kernel=kernel,
            accel=accel,
            cpu=settings.get("cpu"),  # type: ignore[arg-type]
            smp=int(settings["smp"]),  # type: ignore[call-overload]
            mem_mb=parse_size_mb(str(settings["mem"])),
            hugepages=parse_hugepages(str(settings["hugepages"])),
            host_hugepages=bool(settings["host_hugepages"]),
            numa_nodes=int(settings["numa"]),  # type: ignore[call-overload]
        )
        if settings.get("panic_on_warn"):
            spec.extra_cmdline.append("panic_on_warn=1")
        if settings.get("cmdline"):
            spec.extra_cmdline += str(settings["cmdline"]).split()
        return spec

    def node_sizes_mb(self) -> list[int]:
        """Guest RAM per NUMA node: node 0 holds what the others (NUMA_NODE_MB each) do not.

        The extra nodes are small and CPU-less, so the guest's pools, its 1G pages (carved
        from whole gigabytes of node 0) and everything it runs stay where they were."""
        return [self.mem_mb - NUMA_NODE_MB * (self.numa_nodes - 1)] + [NUMA_NODE_MB] * (
            self.numa_nodes - 1
        )

    @property
    def cpu_model(self) -> str:
        return self.cpu or ("host" if self.accel == "kvm" else "max")

    def validate(self) -> None:
        pool_mb = sum(kb * n for kb, n in self.hugepages.items()) // 1024
        if pool_mb + GUEST_RESERVE_MB > self.mem_mb:
            pools = ",".join(f"{format_pagesize(kb)}:{n}" for kb, n in self.hugepages.items())
            raise UsageError(
                f"--hugepages {pools} needs {pool_mb} MiB but --mem is {self.mem_mb} MiB; "
                f"the guest needs about {GUEST_RESERVE_MB} MiB besides its pools: "
                f"use --mem {pool_mb + GUEST_RESERVE_MB}M or more, or fewer hugepages"
            )
        extra = NUMA_NODE_MB * (self.numa_nodes - 1)
        if self.mem_mb - extra < 2 * NUMA_NODE_MB:
            raise UsageError(
                f"--numa {self.numa_nodes} gives each node after the first {NUMA_NODE_MB} MiB, "
                f"which leaves node 0 {self.mem_mb - extra} MiB of --mem {self.mem_mb}M: "
                f"use --mem {extra + 2 * NUMA_NODE_MB}M or more, or fewer nodes"
            )
        giant = self.hugepages.get(1024 * 1024, 0)
        need = LOW_RAM_MB_WITH_1G + giant * 1024 + HIGH_RESERVE_MB + extra
        if giant and self.mem_mb < need:
            nodes = f" and {extra} MiB for the other NUMA nodes" if extra else ""
            raise UsageError(
                f"--hugepages 1G:{giant} needs --mem {need}M or more: 1G pages are carved from "
                f"whole gigabytes above the first {LOW_RAM_MB_WITH_1G} MiB of guest RAM{nodes}"
            )
