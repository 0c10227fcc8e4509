"""kernel info: a kernel's config found on disk, and what it means for the suite."""

import gzip
import struct
from pathlib import Path

import pytest

from harness.kernel import image
from harness.kernel.build import BZIMAGE
from harness.kernel.image import embedded_config, inspect_kernel, pvh_vmlinux
from harness.kernel.info import (
    GuestSwap,
    assess_config,
    choose_swap,
    config_sources,
    config_warnings,
    find_modules_tree,
    format_info,
    module_lookup,
)

from .test_kconfig import RECORDED_CONFIG
from .test_kernel import _elf_with_note

# -- kernel info and modules ------------------------------------------------------------------


def fake_bzimage(path: Path, version: str, kernel_bytes: bytes) -> Path:
    """A bzImage as far as the header and payload go: gzip payload after one setup sector."""
    payload = gzip.compress(kernel_bytes)
    data = bytearray(1024)
    data[0x1F1] = 1  # setup_sects: the payload area starts at (1 + 1) * 512
    struct.pack_into("<H", data, 0x1FE, 0xAA55)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x300 - 0x200)
    data[0x300 : 0x300 + len(version) + 1] = version.encode() + b"\0"
    struct.pack_into("<II", data, 0x248, 0, len(payload))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data) + payload)
    return path


def ikconfig(text: str) -> bytes:
    return b"\x7fELF...code..." + b"IKCFG_ST" + gzip.compress(text.encode()) + b"IKCFG_ED..."


VERSION = "6.1.192-uffd-min (root@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP Sat Nov 22"


def test_embedded_config_is_found():
    assert embedded_config(ikconfig("CONFIG_USERFAULTFD=y\n")) == "CONFIG_USERFAULTFD=y\n"
    assert embedded_config(b"no config here") is None


def test_config_sources_in_build_tree(tmp_path):
    out = tmp_path / "build" / "min"
    bz = fake_bzimage(out / BZIMAGE, VERSION, ikconfig(RECORDED_CONFIG))
    (out / ".config").write_text(RECORDED_CONFIG.replace("CONFIG_ZRAM=y", "CONFIG_ZRAM=m"))
    kernel = inspect_kernel(bz)
    sources = config_sources(kernel, tmp_path / "cache", boot=tmp_path / "boot")
    assert [s.kind for s in sources] == ["embedded", "build tree"]
    info = format_info(kernel, sources, find_modules_tree(kernel, tmp_path / "modules"), 256)
    assert "release:  6.1.192-uffd-min" in info
    assert "guest swap: none (no CONFIG_SWAP)" in info  # the recorded config lacks it
    assert "build:    (root@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP Sat Nov 22" in info
    assert "config:   embedded in the kernel (CONFIG_IKCONFIG)" in info
    assert f"also build tree: {out / '.config'} (DIFFERENT)" in info
    assert "modules:  none needed: CONFIG_MODULES is not set" in info
    assert "  CONFIG_USERFAULTFD                  y" in info


def test_embedded_config_is_cached_by_image_content(tmp_path, monkeypatch):
    bz = fake_bzimage(tmp_path / "bzImage", VERSION, ikconfig("CONFIG_USERFAULTFD=y\n"))
    kernel = inspect_kernel(bz)
    cache = tmp_path / "cache"
    first = config_sources(kernel, cache, boot=tmp_path)
    (entry,) = (cache / "kernels").iterdir()

    def no_unpacking(data: bytes):
        raise AssertionError("unpacked again")

    # The second look is the cache's: nothing is unpacked.
    with monkeypatch.context() as m:
        m.setattr("harness.kernel.image.bzimage_payload", no_unpacking)
        assert config_sources(kernel, cache, boot=tmp_path)[0].text == first[0].text
    # A damaged entry is not believed: it is unpacked again.
    (entry / "config").write_text("CONFIG_FROM_CACHE=y\n")
    assert config_sources(kernel, cache, boot=tmp_path)[0].text == first[0].text
    assert first[0].text == "CONFIG_USERFAULTFD=y\n"
    # No embedded config is remembered too, and a changed image is looked at afresh.
    fake_bzimage(bz, VERSION, b"no config")
    assert config_sources(inspect_kernel(bz), cache, boot=tmp_path) == []
    assert len(list((cache / "kernels").iterdir())) == 2


def test_the_payload_is_unpacked_once_for_the_config_and_the_pvh_boot(tmp_path, monkeypatch):
    elf = _elf_with_note(b"Xen\0", 18) + ikconfig("CONFIG_PVH=y\n")
    kernel = inspect_kernel(fake_bzimage(tmp_path / "bzImage", VERSION, elf))
    unpacked = []
    decompress = image.decompress_payload
    monkeypatch.setattr(
        image, "decompress_payload", lambda *a: unpacked.append(a[0]) or decompress(*a)
    )
    cache = tmp_path / "cache"
    assert config_sources(kernel, cache, boot=tmp_path)[0].text == "CONFIG_PVH=y\n"
    vmlinux = pvh_vmlinux(kernel, cache)
    assert vmlinux is not None and vmlinux.read_bytes() == elf
    assert pvh_vmlinux(kernel, cache) == vmlinux
    assert unpacked == ["gzip"]
    # Without a PVH entry nothing big is kept, and the answer is remembered all the same.
    plain = inspect_kernel(fake_bzimage(tmp_path / "plain", VERSION, ikconfig("CONFIG_A=y\n")))
    assert pvh_vmlinux(plain, cache) is None
    assert config_sources(plain, cache, boot=tmp_path)[0].text == "CONFIG_A=y\n"
    assert unpacked == ["gzip", "gzip"]


def test_boot_config_and_the_userfaultfd_warning(tmp_path):
    bz = fake_bzimage(
        tmp_path / "vmlinuz-6.1.0-9-amd64",
        VERSION.replace("6.1.192-uffd-min", "6.1.0-9-amd64"),
        b"",
    )
    (tmp_path / "config-6.1.0-9-amd64").write_text("# CONFIG_USERFAULTFD is not set\n")
    kernel = inspect_kernel(bz)
    sources = config_sources(kernel, tmp_path / "cache", boot=tmp_path)
    assert [s.kind for s in sources] == ["/boot"]
    info = format_info(kernel, sources, None, 256)
    assert "  CONFIG_USERFAULTFD is not set: every uffd workload will skip" in info
    # The arch and PTE-marker options follow from USERFAULTFD: no separate warnings.
    assert "HAVE_ARCH_USERFAULTFD_WP is not set" not in info


def test_no_config_anywhere_is_said(tmp_path):
    kernel = inspect_kernel(fake_bzimage(tmp_path / "bzImage", VERSION, b""))
    assert config_warnings(kernel)[0].endswith("cannot tell what the suite will skip")


def test_assess_modular_drivers():
    values = {"USERFAULTFD": "y", "VIRTIO_NET": "m", "VIRTIO_PCI": "y", "ZRAM": "m"}
    with_modules = {f.check.option: f.problem for f in assess_config(values, True)}
    assert with_modules["VIRTIO_NET"] is None and with_modules["ZRAM"] is None
    without = {f.check.option: f.problem for f in assess_config(values, False)}
    assert without["VIRTIO_NET"] == (
        "CONFIG_VIRTIO_NET is a module but no modules tree was found: "
        "the guest has no network: SSH is impossible"
    )
    assert without["KASAN"] is None  # debug options inform, never warn


def test_find_modules_tree(tmp_path):
    out = tmp_path / "build" / "std"
    bz = fake_bzimage(out / BZIMAGE, VERSION.replace("-uffd-min", ""), b"")
    system = tmp_path / "lib-modules"
    kernel = inspect_kernel(bz)
    assert find_modules_tree(kernel, system) is None
    (system / "6.1.192").mkdir(parents=True)
    (system / "6.1.192" / "modules.dep").touch()
    assert find_modules_tree(kernel, system) == system / "6.1.192"
    built = out / "modules-install" / "lib" / "modules" / "6.1.192"
    built.mkdir(parents=True)
    assert find_modules_tree(kernel, system) == system / "6.1.192"  # no modules.dep yet
    (built / "modules.dep").touch()
    assert find_modules_tree(kernel, system) == built
    # The same through the arch/x86_64 symlink kbuild makes.
    link = out / "arch" / "x86_64" / "boot" / "bzImage"
    link.parent.mkdir(parents=True)
    link.symlink_to(bz)
    assert find_modules_tree(inspect_kernel(link), system) == built


# -- the guest's swap ----------------------------------------------------------------------------

DEBIAN = {"SWAP": "y", "ZRAM": "m", "VIRTIO_BLK": "m"}  # Debian 6.1's values
NO_ZRAM = {"SWAP": "y", "VIRTIO_BLK": "y"}  # tinyconfig + minimal.config + "no ZRAM"


@pytest.mark.parametrize(
    "values, modules, kind, text",
    [
        (DEBIAN, {"zram", "virtio_blk"}, "zram", "zram (256 MiB)"),
        ({**NO_ZRAM, "ZRAM": "y"}, set(), "zram", "zram (256 MiB)"),
        (
            NO_ZRAM,
            set(),
            "disk",
            "virtio-blk disk (256 MiB): no zram (CONFIG_ZRAM is not set)",
        ),
        (
            DEBIAN,
            {"virtio_blk"},
            "disk",
            "virtio-blk disk (256 MiB): no zram "
            "(CONFIG_ZRAM=m but the guest image has no zram module)",
        ),
        ({**NO_ZRAM, "SWAP": "n"}, set(), "none", "none (no CONFIG_SWAP)"),
        ({"ZRAM": "y", "VIRTIO_BLK": "y"}, set(), "none", "none (no CONFIG_SWAP)"),
        (
            {"SWAP": "y", "VIRTIO_BLK": "m"},
            set(),
            "none",
            "none (no swap device: no zram (CONFIG_ZRAM is not set), no virtio-blk "
            "(CONFIG_VIRTIO_BLK=m but the guest image has no virtio_blk module))",
        ),
        (
            None,
            set(),
            "auto",
            "zram if the kernel has it, else a virtio-blk disk (256 MiB): "
            "the kernel's config was not found",
        ),
    ],
)
def test_the_guest_swap_follows_the_config(values, modules, kind, text):
    swap = choose_swap(values, 256, lambda name: name in modules)
    assert (swap.kind, swap.explain()) == (kind, text)
    # Only a disk (or a guest that may need one) gets the host file.
    assert swap.attach_disk == (kind in ("disk", "auto"))


def test_no_swap_asked_for_means_none_on_any_kernel():
    assert choose_swap(DEBIAN, 0, lambda name: True) == GuestSwap(
        "none", 0, "the image recipe asks for none (swap_mb: 0)"
    )


def _config_kernel(tmp_path: Path, config: str):
    bz = fake_bzimage(tmp_path / "bzImage", VERSION, ikconfig(config))
    kernel = inspect_kernel(bz)
    return kernel, config_sources(kernel, tmp_path / "cache", boot=tmp_path / "boot")


def test_kernel_info_names_the_guest_swap(tmp_path):
    kernel, sources = _config_kernel(tmp_path, "CONFIG_SWAP=y\nCONFIG_VIRTIO_BLK=y\n")
    info = format_info(kernel, sources, None, 256)
    assert "guest swap: virtio-blk disk (256 MiB): no zram (CONFIG_ZRAM is not set)" in info
    assert "  CONFIG_VIRTIO_BLK                   y" in info
    assert "no swap" not in info.split("warnings:")[1]

    kernel, sources = _config_kernel(tmp_path / "z", "CONFIG_SWAP=y\nCONFIG_ZRAM=y\n")
    assert "guest swap: zram (256 MiB)" in format_info(kernel, sources, None, 256)


def test_a_swap_kernel_without_a_swap_device_is_a_warning(tmp_path):
    kernel, sources = _config_kernel(tmp_path, "CONFIG_SWAP=y\n# CONFIG_VIRTIO_BLK is not set\n")
    info = format_info(kernel, sources, None, 256)
    assert "guest swap: none (no swap device: no zram" in info
    warnings = info.split("warnings:")[1]
    assert "the guest gets no swap, no swap device" in warnings
    assert "the swap-based uffd-wp workloads will skip" in warnings


def test_module_lookup_reads_the_modules_tree(tmp_path, data_dir):
    (tmp_path / "modules.dep").write_text((data_dir / "modules.dep.6.1-virtio").read_text())
    has = module_lookup(tmp_path)
    assert has("virtio_blk") and has("zram") and not has("nosuch")
    assert not module_lookup(None)("zram")
