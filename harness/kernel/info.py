"""`kernel info`: where a kernel's config is, and what it means for the suite.

The assessment (which options the suite needs, what lacking each costs) and the info text
are pure; finding the config reads the image (its embedded IKCONFIG), the build tree
beside it and /boot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.host.cache import cache_root
from harness.kernel.image import KernelImage, unpack_kernel
from harness.kernel.kconfig import parse_config
from harness.kernel.modules import ModuleTree

#: The modules_install tree inside a build's --out directory.
MODULES_INSTALL = "modules-install"

# =========================================================================================
# The config as the suite sees it (`kernel info`, and warnings before a boot)
# =========================================================================================


@dataclass(frozen=True)
class Check:
    option: str
    consequence: str  # what happens when the option is missing
    group: str = "uffd"  # uffd | guest | debug
    modular_ok: bool = False  # =m is fine when the guest image gets the modules
    after: str | None = None  # not worth a warning of its own when this option is off
    warn: bool = True  # False: shown for information only


#: What the suite needs from a kernel config, and what it costs to lack each option.
CHECKS: tuple[Check, ...] = (
    Check("USERFAULTFD", "every uffd workload will skip"),
    Check("HAVE_ARCH_USERFAULTFD_WP", "every uffd-wp workload will skip", after="USERFAULTFD"),
    Check(
        "HAVE_ARCH_USERFAULTFD_MINOR",
        "every minor-fault workload will skip",
        after="USERFAULTFD",
    ),
    Check(
        "PTE_MARKER_UFFD_WP",
        "uffd-wp on shmem and hugetlb will skip (kernels before 5.19 lack it)",
        after="USERFAULTFD",
    ),
    Check("HUGETLBFS", "every hugetlb workload will skip"),
    Check("TRANSPARENT_HUGEPAGE", "the anon-thp workloads will skip"),
    Check("SHMEM", "shmem is ramfs-backed: the shmem workloads will not test shmem"),
    Check("TMPFS", "no tmpfs: /tmp and /dev/shm cannot be mounted in the guest"),
    Check("MEMFD_CREATE", "no memfd_create(): shmem and hugetlb workloads will skip"),
    Check("ADVISE_SYSCALLS", "no madvise(): MADV_PAGEOUT and MADV_HUGEPAGE workloads fail"),
    Check("PROC_PAGE_MONITOR", "no /proc/PID/pagemap: the pagemap checks will skip"),
    Check("SWAP", "no swap: the swap-based uffd-wp workloads will skip"),
    # The guest's swap device: zram, else a virtio-blk disk. Lacking both is one warning
    # of its own (swap_warning), not one per option.
    Check("ZRAM", "the guest swaps to a virtio-blk disk instead", "uffd", True, warn=False),
    Check("VIRTIO_BLK", "no swap disk when zram is absent", "uffd", True, warn=False),
    Check("VIRTIO_PCI", "the guest has no network: SSH is impossible", "guest", True),
    Check("VIRTIO_NET", "the guest has no network: SSH is impossible", "guest", True),
    Check("SERIAL_8250_CONSOLE", "no serial console: crashes cannot be seen", "guest"),
    Check("DEVTMPFS", "the guest init cannot mount /dev", "guest"),
    Check("BLK_DEV_INITRD", "the guest image (an initramfs) cannot be loaded", "guest"),
    Check("UNIX98_PTYS", "no ptys: dropbear cannot open sessions", "guest"),
    Check("MULTIUSER", "no users/capabilities: dropbear cannot run", "guest"),
    Check("HW_RANDOM_VIRTIO", "dropbear may wait long for entropy", "guest", True),
    Check("MAGIC_SYSRQ", "no SysRq: a hung guest cannot be asked for task dumps", "guest"),
    Check("PVH", "no PVH entry: each boot is ~8 s slower under TCG", "guest"),
    Check("IKCONFIG", "the config is not embedded in the kernel", "guest", warn=False),
    Check("DEBUG_VM", "VM_BUG_ON checks are off", "debug"),
    Check("PAGE_TABLE_CHECK", "page table accounting checks are off", "debug"),
    Check("PROVE_LOCKING", "lockdep is off", "debug"),
    Check("DEBUG_ATOMIC_SLEEP", "sleeping in atomic context goes unreported", "debug"),
    Check("KASAN", "no KASAN: memory-safety bugs may pass silently", "debug"),
    Check("LKDTM", "no LKDTM: crash detection cannot be tested on this kernel", "debug"),
)


@dataclass(frozen=True)
class Finding:
    check: Check
    value: str  # y, m or n
    problem: str | None  # the warning; None when fine or covered by another warning


def _problem(check: Check, value: str, values: dict[str, str], have_modules: bool) -> str | None:
    if not check.warn or check.group == "debug" or value == "y":
        return None
    if check.after and values.get(check.after) != "y":
        return None
    name = f"CONFIG_{check.option}"
    if value == "m" and check.modular_ok:
        if have_modules:
            return None
        return f"{name} is a module but no modules tree was found: {check.consequence}"
    return f"{name} {'is a module' if value == 'm' else 'is not set'}: {check.consequence}"


def assess_config(values: dict[str, str], have_modules: bool = False) -> list[Finding]:
    """One finding per checked option, with a warning for what the suite will miss."""
    return [
        Finding(
            c,
            values.get(c.option, "n"),
            _problem(c, values.get(c.option, "n"), values, have_modules),
        )
        for c in CHECKS
    ]


# =========================================================================================
# The guest's swap: zram when the kernel has it, else a virtio-blk disk on a host file
# =========================================================================================


@dataclass(frozen=True)
class GuestSwap:
    """The swap a guest of this kernel gets, as the host decides it from the config.

    kind: "zram" (a compressed RAM disk inside the guest: fast, nothing on the host),
    "disk" (a virtio-blk disk backed by a sparse file in the guest's work dir), "auto"
    (the config is unknown: the disk is attached and the guest's init still prefers
    zram if the kernel has it) or "none".
    """

    kind: str
    size_mb: int
    why: str  # the config fact behind the choice

    @property
    def attach_disk(self) -> bool:
        return self.kind in ("disk", "auto")

    def describe(self) -> str:
        """'zram (256 MiB)', 'virtio-blk disk (256 MiB)', 'none (no CONFIG_SWAP)', ..."""
        if self.kind == "zram":
            return f"zram ({self.size_mb} MiB)"
        if self.kind == "disk":
            return f"virtio-blk disk ({self.size_mb} MiB)"
        if self.kind == "auto":
            return f"zram if the kernel has it, else a virtio-blk disk ({self.size_mb} MiB)"
        return f"none ({self.why})"

    def explain(self) -> str:
        """describe() with the reason, where describe() does not already give it."""
        if self.kind in ("zram", "none"):
            return self.describe()
        return f"{self.describe()}: {self.why}"


def _unusable(
    option: str, module: str, values: dict[str, str], has_module: Callable[[str], bool]
) -> str | None:
    """Why the guest cannot use this driver (None: it can)."""
    value = values.get(option, "n")
    if value == "y" or (value == "m" and has_module(module)):
        return None
    if value == "m":
        return f"CONFIG_{option}=m but the guest image has no {module} module"
    return f"CONFIG_{option} is not set"


def choose_swap(
    values: dict[str, str] | None,
    size_mb: int,
    has_module: Callable[[str], bool] = lambda name: False,
) -> GuestSwap:
    """The guest's swap from the kernel config (None: no config found). `has_module` says
    whether the guest image carries a driver module (for options set to m)."""
    if size_mb <= 0:
        return GuestSwap("none", 0, "the image recipe asks for none (swap_mb: 0)")
    if values is None:
        return GuestSwap("auto", size_mb, "the kernel's config was not found")
    if values.get("SWAP") != "y":
        return GuestSwap("none", 0, "no CONFIG_SWAP")
    no_zram = _unusable("ZRAM", "zram", values, has_module)
    if no_zram is None:
        return GuestSwap("zram", size_mb, "the kernel has zram")
    no_disk = _unusable("VIRTIO_BLK", "virtio_blk", values, has_module)
    if no_disk is None:
        return GuestSwap("disk", size_mb, f"no zram ({no_zram})")
    return GuestSwap("none", 0, f"no swap device: no zram ({no_zram}), no virtio-blk ({no_disk})")


def swap_warning(swap: GuestSwap, values: dict[str, str]) -> str | None:
    """A warning when a kernel with CONFIG_SWAP still gets no swap (without CONFIG_SWAP,
    the SWAP check warns)."""
    if swap.kind != "none" or values.get("SWAP") != "y":
        return None
    return f"the guest gets no swap, {swap.why}: the swap-based uffd-wp workloads will skip"


def split_version(version: str) -> tuple[str, str]:
    """'6.1.0-56-amd64 (debian-kernel@...) #1 SMP ...' -> (release, the build string)."""
    release, _, build = version.partition(" ")
    return release, build.strip()


@dataclass(frozen=True)
class ConfigSource:
    kind: str  # "embedded", "build tree", "/boot"
    path: Path | None
    text: str

    def describe(self) -> str:
        if self.kind == "embedded":
            return "embedded in the kernel (CONFIG_IKCONFIG)"
        return f"{self.kind}: {self.path}"


def format_info(
    kernel: KernelImage,
    sources: list[ConfigSource],
    modules: Path | None,
    swap_mb: int,
    has_module: Callable[[str], bool] = lambda name: False,
) -> str:
    """The `kernel info` text; `swap_mb` and `has_module` (is this driver module in the
    guest image?) decide the guest's swap line."""
    release, build = split_version(kernel.version)
    lines = [f"kernel:   {kernel.path}", f"release:  {release}", f"build:    {build}"]
    if not sources:
        lines.append(
            "config:   not found (no embedded IKCONFIG, no .config beside the "
            f"bzImage, no /boot/config-{release})"
        )
        return "\n".join(lines)
    values = parse_config(sources[0].text)
    lines.append(f"config:   {sources[0].describe()}")
    for other in sources[1:]:
        same = parse_config(other.text) == values
        lines.append(f"          also {other.describe()} ({'same' if same else 'DIFFERENT'})")
    if values.get("MODULES") == "y":
        lines.append(f"modules:  {modules or 'none found (no modules.dep for this release)'}")
    else:
        lines.append("modules:  none needed: CONFIG_MODULES is not set, everything is built in")
    swap = choose_swap(values, swap_mb, has_module)
    lines.append(f"guest swap: {swap.explain()}")
    findings = assess_config(values, modules is not None)
    for group, title in (("uffd", "uffd options"), ("guest", "guest image"), ("debug", "debug")):
        lines.append(f"{title}:")
        for f in findings:
            if f.check.group == group:
                shown = {"y": "y", "m": "m"}.get(f.value, "not set")
                lines.append(f"  CONFIG_{f.check.option:<28} {shown}")
    problems = [f.problem for f in findings if f.problem]
    problems += [w for w in [swap_warning(swap, values)] if w]
    lines.append("warnings:" if problems else "warnings: none")
    lines += [f"  {p}" for p in problems]
    return "\n".join(lines)


# =========================================================================================
# Finding a kernel's config on disk
# =========================================================================================


def build_tree_of(kernel: KernelImage) -> Path | None:
    """The build (or --out) directory of a bzImage at <tree>/arch/x86/boot/bzImage."""
    for path in (kernel.path.absolute(), kernel.path.resolve()):
        if path.parts[-4:] == ("arch", "x86", "boot", "bzImage"):
            return path.parents[3]
    return None


def config_sources(
    kernel: KernelImage, cache: Path, boot: Path = Path("/boot")
) -> list[ConfigSource]:
    """Every config found for this kernel, the most trustworthy first."""
    found: list[ConfigSource] = []
    if text := unpack_kernel(kernel.path, cache).config:
        found.append(ConfigSource("embedded", None, text))
    tree = build_tree_of(kernel)
    if tree and (tree / ".config").is_file():
        found.append(ConfigSource("build tree", tree / ".config", (tree / ".config").read_text()))
    boot_config = boot / f"config-{kernel.release}"
    if boot_config.is_file():
        found.append(ConfigSource("/boot", boot_config, boot_config.read_text()))
    return found


# =========================================================================================
# What a boot of a kernel will have and lack
# =========================================================================================


def find_modules_tree(kernel: KernelImage, system: Path = Path("/lib/modules")) -> Path | None:
    """Where this kernel's modules are: a build's modules_install tree, else the system's.

    A modules tree counts only with a modules.dep (depmod has run), since the image
    builder resolves driver dependencies from it.
    """
    tree = build_tree_of(kernel)
    candidates = []
    if tree:
        candidates.append(tree / MODULES_INSTALL / "lib" / "modules" / kernel.release)
    candidates.append(system / kernel.release)
    return next((c for c in candidates if (c / "modules.dep").is_file()), None)


def kernel_config(kernel: KernelImage) -> dict[str, str] | None:
    """The kernel's config values from its most trustworthy source; None when none found."""
    sources = config_sources(kernel, cache_root())
    return parse_config(sources[0].text) if sources else None


def module_lookup(modules: Path | None) -> Callable[[str], bool]:
    """has_module for choose_swap: is this driver a module of that modules tree (with its
    dependencies), so the guest image gets it?"""
    if modules is None:
        return lambda name: False
    tree = ModuleTree(modules)
    return lambda name: not tree.resolve([], [name])[1]


def config_warnings(kernel: KernelImage) -> list[str]:
    """What a boot of this kernel will lack, for the harness to print before booting.

    The guest's swap is not among them: the guest reports it once its image is made."""
    values = kernel_config(kernel)
    if values is None:
        return [
            f"{kernel.path}: no config found (no embedded IKCONFIG, no .config beside it, "
            f"no /boot/config-{kernel.release}); cannot tell what the suite will skip"
        ]
    findings = assess_config(values, find_modules_tree(kernel) is not None)
    return [f.problem for f in findings if f.problem]
