"""Kernel images: the bzImage header, the default packaged kernel, and the payload's
vmlinux and embedded config, unpacked once per image and cached."""

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness import UsageError
from harness.host.cache import seal, sound_entry, staged_dir
from harness.kernel.elf import notes

# Offsets in the x86 boot protocol header (Documentation/arch/x86/boot.rst).
_BOOT_FLAG_OFF = 0x1FE  # 0xAA55
_HDRS_OFF = 0x202  # "HdrS"
_VERSION_PTR_OFF = 0x20E  # kernel_version: pointer to a string, minus 0x200
_SETUP_SECTS_OFF = 0x1F1  # 512-byte setup sectors after the boot sector (0 means 4)
_SYSSIZE_OFF = 0x1F4  # size of the protected-mode code in 16-byte units (protocol >= 2.04)
_PROTOCOL_OFF = 0x206
_ARM64_MAGIC_OFF = 0x38  # "ARM\x64" in an arm64 Image header
_RISCV_MAGIC_OFF = 0x30  # "RISCV\0\0\0" (v0.2) in a RISC-V Image header


@dataclass(frozen=True)
class KernelImage:
    path: Path
    version: str  # the full version string, "6.1.0-56-amd64 (debian-kernel@...) #1 SMP ..."

    @property
    def release(self) -> str:
        """The release as `uname -r` prints it."""
        return self.version.split()[0]


def parse_bzimage(data: bytes, name: str = "kernel") -> str:
    """Return the version string of an x86 bzImage, or raise UsageError saying what it is."""
    if len(data) < 0x400:
        raise UsageError(
            f"{name}: too small to be a kernel ({len(data)} bytes); expected an x86 bzImage"
        )
    if data[_ARM64_MAGIC_OFF : _ARM64_MAGIC_OFF + 4] == b"ARM\x64":
        raise UsageError(
            f"{name}: is an arm64 Image, not an x86 bzImage; this harness boots x86_64 guests"
        )
    if data[_RISCV_MAGIC_OFF : _RISCV_MAGIC_OFF + 5] == b"RISCV":
        raise UsageError(f"{name}: is a RISC-V Image, not an x86 bzImage")
    if data[:4] == b"\x7fELF":
        raise UsageError(
            f"{name}: is an ELF file (vmlinux?), not a bzImage; use arch/x86/boot/bzImage"
        )
    flag = struct.unpack_from("<H", data, _BOOT_FLAG_OFF)[0]
    if flag != 0xAA55 or data[_HDRS_OFF : _HDRS_OFF + 4] != b"HdrS":
        raise UsageError(f"{name}: not an x86 bzImage (no boot header magic 0xAA55/HdrS)")
    ptr = struct.unpack_from("<H", data, _VERSION_PTR_OFF)[0]
    start = ptr + 0x200
    if not ptr or start >= len(data):
        raise UsageError(f"{name}: bzImage header has no kernel version string (truncated file?)")
    end = data.find(b"\0", start, start + 512)
    if end < 0:
        raise UsageError(f"{name}: bzImage version string is unterminated (truncated file?)")
    version = data[start:end].decode("ascii", "replace").strip()
    if not version or not re.match(r"\d+\.\d+", version):
        raise UsageError(f"{name}: bzImage version string {version!r} does not look like a release")
    return version


def declared_size(head: bytes) -> int | None:
    """The file size a bzImage header declares (boot and setup sectors, then the
    protected-mode code), or None when the header is too old to say."""
    (protocol,) = struct.unpack_from("<H", head, _PROTOCOL_OFF)
    if protocol < 0x204:
        return None
    (syssize,) = struct.unpack_from("<I", head, _SYSSIZE_OFF)
    return ((head[_SETUP_SECTS_OFF] or 4) + 1) * 512 + syssize * 16


def inspect_kernel(path: Path) -> KernelImage:
    if not path.exists():
        raise UsageError(f"{path}: no such file; give --kernel the path of an x86 bzImage")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file; give --kernel the path of an x86 bzImage")
    try:
        with path.open("rb") as f:
            head = f.read(0x10000)
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})") from e
    version = parse_bzimage(head, str(path))
    # A cut-off copy boots into garbage, or breaks the PVH extraction after the image is
    # built: refuse it here, before any work.
    size, need = path.stat().st_size, declared_size(head)
    if need is not None and size < need:
        raise UsageError(
            f"{path}: truncated bzImage: {size} bytes, but its header declares {need}; "
            "copy or rebuild the whole file"
        )
    return KernelImage(path, version)


def _release_key(release: str) -> tuple:
    return tuple(int(n) if n.isdigit() else n for n in re.split(r"[.-]", release))


def default_kernel(boot: Path = Path("/boot"), modules: Path = Path("/lib/modules")) -> KernelImage:
    """The newest packaged kernel in /boot whose modules are installed."""
    candidates = []
    for image in boot.glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        if (modules / release / "modules.dep").exists():
            candidates.append((_release_key(release), image))
    if not candidates:
        raise UsageError(
            f"no packaged kernel found: no {boot}/vmlinuz-* with modules in {modules}; "
            "install one with `apt-get install linux-image-amd64` or pass --kernel PATH"
        )
    candidates.sort()
    return inspect_kernel(candidates[-1][1])


# -- PVH direct boot -----------------------------------------------------------------------
# Under TCG, the firmware's real-mode path and the bzImage's own decompressor take ~8 s of
# a ~15 s boot of a distro kernel. A kernel with CONFIG_PVH can instead be booted from its
# uncompressed vmlinux through its PVH entry point, which skips both; the vmlinux is
# extracted once per bzImage content and cached, with the config embedded in it.

_XEN_ELFNOTE_PHYS32_ENTRY = 18


def bzimage_payload(data: bytes) -> tuple[str, bytes] | None:
    """(compression, compressed payload) of a bzImage, from its header (protocol >= 2.08)."""
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = data[start : start + length]
    for magic, kind in (
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x1f\x8b", "gzip"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x5d\x00", "lzma"),
    ):
        if payload.startswith(magic):
            return kind, payload
    return None


def decompress_payload(kind: str, payload: bytes) -> bytes | None:
    import gzip
    import lzma
    import shutil
    import subprocess

    try:
        if kind in ("xz", "lzma"):
            fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
            return lzma.LZMADecompressor(format=fmt).decompress(payload)
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
        if kind == "zstd" and shutil.which("zstd"):
            return subprocess.run(
                ["zstd", "-dc"], input=payload, capture_output=True, check=True
            ).stdout
    except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, subprocess.CalledProcessError):
        return None
    return None


def has_pvh_note(elf: bytes) -> bool:
    """True if a 64-bit ELF carries the Xen PHYS32_ENTRY note QEMU needs for PVH boot."""
    return any(n.name == b"Xen" and n.type == _XEN_ELFNOTE_PHYS32_ENTRY for n in notes(elf))


def embedded_config(kernel_bytes: bytes) -> str | None:
    """The IKCONFIG text inside an uncompressed kernel: gzip data between two markers."""
    start = kernel_bytes.find(b"IKCFG_ST")
    if start < 0:
        return None
    end = kernel_bytes.find(b"IKCFG_ED", start)
    blob = kernel_bytes[start + 8 : end if end > 0 else None]
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob).decode(errors="replace")
    except zlib.error:
        return None


@dataclass(frozen=True)
class Unpacked:
    """What the harness takes from a bzImage's payload."""

    vmlinux: Path | None  # the uncompressed kernel, kept only when it has a PVH entry
    config: str | None  # its embedded IKCONFIG


def unpack_kernel(image: Path, cache: Path) -> Unpacked:
    """The payload of a bzImage, unpacked once per image content: unpacking an xz distro
    kernel takes about a second, and both the config check before a boot and the PVH boot
    itself want it, so what both need goes into one cache entry (even "nothing")."""
    data = image.read_bytes()
    entry = cache / "kernels" / hashlib.sha256(data).hexdigest()[:32]
    if not sound_entry(entry, "unpacked kernel"):
        found = bzimage_payload(data)
        elf = decompress_payload(*found) if found else None
        config = embedded_config(elf) if elf else None
        with staged_dir(entry) as tmp:
            (tmp / "config").write_text(config or "")
            if elf and has_pvh_note(elf):
                (tmp / "vmlinux").write_bytes(elf)
            seal(tmp)
    vmlinux = entry / "vmlinux"
    return Unpacked(vmlinux if vmlinux.is_file() else None, (entry / "config").read_text() or None)


def pvh_vmlinux(kernel: KernelImage, cache: Path) -> Path | None:
    """The cached PVH-bootable vmlinux of this bzImage, or None when it has no PVH entry
    (the bzImage is then booted as it is)."""
    return unpack_kernel(kernel.path, cache).vmlinux
