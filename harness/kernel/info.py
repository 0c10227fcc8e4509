"""`kernel info`: where a kernel's config is, and what it means for the suite.

The assessment (which options the suite needs, what lacking each costs) and the info text
are pure; finding the config reads the image (its embedded IKCONFIG), the build tree
beside it and /boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.host.cache import cache_root
from harness.kernel.image import KernelImage, unpack_kernel
from harness.kernel.kconfig import parse_config

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
    Check("ZRAM", "no zram: the guest has no swap device, swap workloads will skip", "uffd", True),
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


def format_info(kernel: KernelImage, sources: list[ConfigSource], modules: Path | None) -> str:
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
    findings = assess_config(values, modules is not None)
    for group, title in (("uffd", "uffd options"), ("guest", "guest image"), ("debug", "debug")):
        lines.append(f"{title}:")
        for f in findings:
            if f.check.group == group:
                shown = {"y": "y", "m": "m"}.get(f.value, "not set")
                lines.append(f"  CONFIG_{f.check.option:<28} {shown}")
    problems = [f.problem for f in findings if f.problem]
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


def config_warnings(kernel: KernelImage) -> list[str]:
    """What a boot of this kernel will lack, for the harness to print before booting."""
    sources = config_sources(kernel, cache_root())
    if not sources:
        return [
            f"{kernel.path}: no config found (no embedded IKCONFIG, no .config beside it, "
            f"no /boot/config-{kernel.release}); cannot tell what the suite will skip"
        ]
    values = parse_config(sources[0].text)
    findings = assess_config(values, find_modules_tree(kernel) is not None)
    return [f.problem for f in findings if f.problem]
