"""`uffd-harness doctor`: what the host has and lacks, and how to install the rest."""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import HarnessError
from harness.guest.qemu import QEMU, qemu_version
from harness.host.accel import choose_accel
from harness.host.hostmem import hugetlbfs_mounts, read_pools
from harness.kernel.elf import PT_INTERP, is_elf64, program_headers
from harness.kernel.image import default_kernel
from harness.settings.values import format_pagesize


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    packages: tuple[str, ...] = ()  # Debian packages that provide it, when it is missing
    required: bool = True


def is_static_elf(path: Path) -> bool:
    """An ELF with no PT_INTERP program header needs no dynamic loader."""
    data = path.read_bytes()[:65536]
    return is_elf64(data) and all(ph.type != PT_INTERP for ph in program_headers(data))


def check_qemu() -> Finding:
    exe = shutil.which(QEMU)
    if not exe:
        return Finding("qemu", False, f"{QEMU} not found", ("qemu-system-x86",))
    return Finding("qemu", True, f"{exe}: {qemu_version(exe) or 'unknown version'}")


def check_busybox() -> Finding:
    path = Path("/bin/busybox")
    if not path.exists():
        return Finding("busybox", False, f"{path} not found", ("busybox-static",))
    if not is_static_elf(path):
        return Finding(
            "busybox",
            False,
            f"{path} is dynamically linked; the guest needs the static one",
            ("busybox-static",),
        )
    return Finding("busybox", True, f"{path} (static)")


def check_dropbear() -> Finding:
    missing = [p for p in ("/usr/sbin/dropbear", "/usr/bin/dropbearkey") if not Path(p).exists()]
    if missing:
        return Finding("dropbear", False, f"{', '.join(missing)} not found", ("dropbear-bin",))
    return Finding("dropbear", True, "/usr/sbin/dropbear, /usr/bin/dropbearkey")


def check_static_libc() -> Finding:
    cc = shutil.which("cc") or shutil.which("gcc")
    libc = next(iter(Path("/usr/lib").glob("*/libc.a")), None) or (
        Path("/usr/lib/libc.a") if Path("/usr/lib/libc.a").exists() else None
    )
    if not cc or not libc:
        what = " and ".join(x for x, have in (("a C compiler", cc), ("libc.a", libc)) if not have)
        return Finding(
            "static libc",
            False,
            f"no {what}: the guest agent is linked statically",
            ("gcc", "libc6-dev"),
        )
    return Finding("static libc", True, f"{cc} with {libc}")


def check_kernel() -> Finding:
    try:
        k = default_kernel()
    except HarnessError as e:
        return Finding("default kernel", False, str(e), ("linux-image-amd64",))
    return Finding("default kernel", True, f"{k.path}: {k.release}")


def check_kvm() -> Finding:
    choice = choose_accel("auto")
    return Finding("accelerator", True, choice.reason, required=False)


def check_host_hugepages() -> Finding:
    pools = read_pools()
    mounts = hugetlbfs_mounts(Path("/proc/mounts").read_text())
    parts = [
        f"{format_pagesize(p.size_kb)}: {p.free}/{p.total} free"
        + ("" if p.size_kb in mounts else " (no hugetlbfs mounted)")
        for p in pools
    ]
    detail = "; ".join(parts) or "no hugepage support"
    return Finding(
        "host hugepages", True, detail + " (only --host-hugepages needs them)", required=False
    )


CHECKS: list[Callable[[], Finding]] = [
    check_qemu,
    check_busybox,
    check_dropbear,
    check_static_libc,
    check_kernel,
    check_kvm,
    check_host_hugepages,
]


def install_command(findings: list[Finding]) -> list[str]:
    pkgs = sorted({p for f in findings if not f.ok for p in f.packages})
    if not pkgs:
        return []
    return ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]


def report(findings: list[Finding]) -> None:
    for f in findings:
        mark = "MISSING" if not f.ok else ("ok     " if f.required else "info   ")
        print(f"{mark} {f.name:15} {f.detail}")


def run_doctor(install: bool = False) -> int:
    findings = [check() for check in CHECKS]
    report(findings)
    cmd = install_command(findings)
    if not cmd:
        print("everything uffd-harness needs is here")
        return 0
    if not install:
        print(f"\nto install what is missing, as root: apt-get update && {' '.join(cmd)}")
        print("or run: uffd-harness doctor --install")
        return 1
    if os.geteuid() != 0:
        raise HarnessError(f"--install needs root; run as root: apt-get update && {' '.join(cmd)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"\ninstalling: {' '.join(cmd[4:])}", flush=True)
    for step in (["apt-get", "update", "-q"], [*cmd[:3], "-q", *cmd[3:]]):
        if subprocess.run(step, env=env).returncode != 0:
            raise HarnessError(f"`{' '.join(step)}` failed; see its output above")
    print("\nafter installing:", flush=True)
    findings = [check() for check in CHECKS]
    report(findings)
    still = [f.name for f in findings if not f.ok and f.required]
    if still:
        print(f"still missing: {', '.join(still)}", file=sys.stderr)
        return 1
    return 0
