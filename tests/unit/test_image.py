import io
import lzma
import stat
from pathlib import Path

import pytest

from harness import HarnessError
from harness.image import cpio
from harness.image.initramfs import load_recipe, module_plan, parse_ldd, plan


def read_cpio(blob: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """A reader for the newc format, independent of the writer under test."""
    out, pos = {}, 0
    while True:
        assert blob[pos : pos + 6] == b"070701"
        f = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name_at = pos + 110
        name = blob[name_at : name_at + namesize - 1].decode()
        data_at = name_at + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, blob[data_at : data_at + size], (rmaj, rmin))
        pos = data_at + size + (-size % 4)


@pytest.fixture
def recipe(tmp_path: Path):
    (tmp_path / "init.sh").write_text("#!/bin/sh\necho hi\n")
    for name in ("busybox", "dropbear"):
        (tmp_path / name).write_bytes(b"ELF " + name.encode())
    (tmp_path / "r.yaml").write_text(
        "name: t\ninit: init.sh\n"
        f"binaries: [{tmp_path}/busybox, {tmp_path}/dropbear]\n"
        "modules: {required: [virtio_net], optional: [zram, virtio_blk]}\nswap_mb: 64\n"
    )
    return load_recipe(tmp_path / "r.yaml")


@pytest.fixture
def modules_tree(tmp_path: Path, data_dir: Path) -> Path:
    root = tmp_path / "lib-modules"
    dep = (data_dir / "modules.dep.6.1-virtio").read_text().replace("zram.ko", "zram.ko.xz")
    for line in dep.splitlines():
        rel = line.split(":")[0]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        body = b"module " + rel.encode()
        (root / rel).write_bytes(lzma.compress(body) if rel.endswith(".xz") else body)
    (root / "modules.dep").write_text(dep)
    return root


def test_image_contents(recipe, modules_tree, tmp_path):
    mods, missing = module_plan(recipe, modules_tree)
    assert missing == []
    lib = tmp_path / "libfake.so.1"
    lib.write_bytes(b"lib")
    entries = plan(
        recipe,
        "ssh-ed25519 AAAAkey test",
        b"HOSTKEY",
        mods,
        ["bin/sh", "usr/bin/sha256sum", str(tmp_path / "busybox").lstrip("/")],
        [str(lib)],
    )
    buf = io.BytesIO()
    cpio.write(buf, entries)
    files = read_cpio(buf.getvalue())

    mode, data, _ = files["init"]
    assert stat.S_ISREG(mode) and mode & 0o111 and data.startswith(b"#!/bin/sh")
    mode, _, rdev = files["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5, 1)
    assert files["root/.ssh/authorized_keys"][1] == b"ssh-ed25519 AAAAkey test\n"
    assert files["root/.ssh/authorized_keys"][0] & 0o777 == 0o600
    assert files["etc/dropbear/host_key"][1] == b"HOSTKEY"
    assert b"SWAP_MB=64\n" in files["etc/uffd-harness.conf"][1]
    mode, target, _ = files["bin/sh"]
    assert stat.S_ISLNK(mode) and target == f"{tmp_path}/busybox".encode()
    assert files[str(lib).lstrip("/")][1] == b"lib"
    # Modules: load order in modules.order, compressed ones stored decompressed as .ko.
    order = files["etc/modules.order"][1].decode().split()[1::2]
    assert order.index("kernel/drivers/net/net_failover.ko") < order.index(
        "kernel/drivers/net/virtio_net.ko"
    )
    assert "kernel/drivers/block/zram/zram.ko" in order
    # The swap disk's driver comes after virtio and virtio_ring, which it needs.
    assert order.index("kernel/drivers/virtio/virtio_ring.ko") < order.index(
        "kernel/drivers/block/virtio_blk.ko"
    )
    assert files["lib/modules/kernel/drivers/block/zram/zram.ko"][1] == (
        b"module kernel/drivers/block/zram/zram.ko.xz"
    )
    # Every file's parent directory comes before it.
    names = list(files)
    for name in names:
        parent = name.rsplit("/", 1)[0]
        if "/" in name:
            assert parent in files and names.index(parent) < names.index(name), name


def test_a_kernel_without_virtio_blk_still_gets_its_image(recipe, modules_tree):
    dep = modules_tree / "modules.dep"
    dep.write_text("".join(ln for ln in dep.read_text().splitlines(True) if "virtio_blk" not in ln))
    mods, missing = module_plan(recipe, modules_tree)
    assert missing == ["virtio_blk"]
    assert not any("virtio_blk" in dest for dest, _ in mods)


def test_no_modules_tree_means_builtin_drivers(recipe):
    assert module_plan(recipe, None) == ([], [])


def test_missing_required_module_is_an_error(recipe, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "modules.dep").write_text("")
    with pytest.raises(HarnessError, match="virtio_net"):
        module_plan(recipe, tmp_path / "empty")


def test_malformed_recipe_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninit: [unclosed\n")
    with pytest.raises(HarnessError, match=r"bad\.yaml:\d+"):
        load_recipe(bad)


def test_parse_ldd(data_dir):
    libs = parse_ldd((data_dir / "ldd-dropbear.txt").read_text())
    assert "/lib64/ld-linux-x86-64.so.2" in libs
    assert "/lib/x86_64-linux-gnu/libc.so.6" in libs
    assert not any("vdso" in lib for lib in libs)


def test_default_recipe_loads():
    r = load_recipe()
    assert r.required_modules == ["virtio_pci", "virtio_net"]
    # Swap: zram, else a virtio-blk disk; both drivers go into a modular kernel's image.
    assert {"zram", "virtio_blk"} <= set(r.optional_modules)
    assert r.swap_mb == 256
    assert r.init.exists()


def test_the_config_init_sources_is_quoted(recipe, tmp_path):
    import dataclasses
    import subprocess

    odd = dataclasses.replace(recipe, name="it's $(touch pwned); x")
    entries = plan(odd, "ssh-ed25519 AAAA", b"K", [], [], [])
    conf = next(e for e in entries if e.name == "etc/uffd-harness.conf").data
    (tmp_path / "conf").write_bytes(conf)
    out = subprocess.run(
        ["sh", "-c", '. ./conf && printf %s "$IMAGE_NAME"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "it's $(touch pwned); x"
    assert not (tmp_path / "pwned").exists()
