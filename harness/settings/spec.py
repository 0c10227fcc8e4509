"""What a guest is: the GuestSpec dataclass and the parsing of its flags."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import UsageError

#: --accel: auto picks KVM only where it is real hardware virtualization.
ACCELS = ("auto", "kvm", "tcg")

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


# -- settings from flags and YAML ----------------------------------------------------------

#: Guest settings shared by the CLI, the pytest plugin and --guest-config files.
SETTING_TYPES: dict[str, type] = {
    "kernel": str,
    "accel": str,
    "cpu": str,
    "smp": int,
    "mem": str,
    "hugepages": str,
    "host_hugepages": bool,
    "guest_timeout": float,
    "panic_on_warn": bool,
}
DEFAULTS: dict[str, object] = {
    "kernel": None,
    "accel": "auto",
    "cpu": None,
    "smp": 2,
    "mem": "3G",
    # Pools for every hugetlb memory type the agent knows, 1G included.
    "hugepages": "2M:128,1G:1",
    "host_hugepages": False,
    "guest_timeout": None,  # per accelerator, see guest.TEST_TIMEOUT
    "panic_on_warn": False,
}


def load_guest_config(path: Path) -> dict[str, object]:
    """A --guest-config YAML file: a mapping of SETTING_TYPES keys. Errors name file:line."""
    import yaml

    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"--guest-config {path}: cannot read ({e.strerror})") from e
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: malformed YAML: {getattr(e, 'problem', e)}") from e
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise UsageError(f"{path}:1: expected a mapping of settings, e.g. `mem: 3G`")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    out: dict[str, object] = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(key, 1)}"
        if key not in SETTING_TYPES:
            raise UsageError(f"{where}: unknown setting {key!r}; known: {', '.join(SETTING_TYPES)}")
        want = SETTING_TYPES[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise UsageError(f"{where}: {key} must be {want.__name__}, not {value!r}")
        out[key] = value
    return out


def merge_settings(flags: dict[str, object], config: dict[str, object]) -> dict[str, object]:
    """Flags given on the command line win over the file, which wins over the defaults.
    A flag counts as given when it is not None."""
    merged = dict(DEFAULTS)
    merged.update(config)
    merged.update({k: v for k, v in flags.items() if k in SETTING_TYPES and v is not None})
    if merged["kernel"]:
        # Absolute, so subprocesses, reproduce lines and xdist workers in other
        # directories mean the same file.
        merged["kernel"] = str(Path(str(merged["kernel"])).absolute())
    return merged
