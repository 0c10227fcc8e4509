import struct

import pytest

from harness import UsageError
from harness.kernel.image import (
    declared_size,
    default_kernel,
    has_pvh_note,
    inspect_kernel,
    parse_bzimage,
)

#: The first 32 KiB of Debian's 6.1.0-56 bzImage: its header and setup code.
HEAD = "bzImage-6.1.0-56-amd64.head"
HEAD_DECLARES = 8245760


def whole_bzimage(path, head: bytes):
    """A file as long as the header declares (sparse past the head)."""
    path.write_bytes(head)
    with path.open("r+b") as f:
        f.truncate(declared_size(head))
    return path


def test_real_bzimage_header(data_dir):
    version = parse_bzimage((data_dir / HEAD).read_bytes())
    assert version.startswith("6.1.0-56-amd64 (debian-kernel@lists.debian.org)")


def test_inspect_gives_release(data_dir, tmp_path):
    k = inspect_kernel(whole_bzimage(tmp_path / "vmlinuz", (data_dir / HEAD).read_bytes()))
    assert k.release == "6.1.0-56-amd64"


def test_truncated_file_with_intact_header_rejected_up_front(data_dir, tmp_path):
    head = (data_dir / HEAD).read_bytes()
    assert declared_size(head) == HEAD_DECLARES
    cut = whole_bzimage(tmp_path / "vmlinuz", head)
    with cut.open("r+b") as f:
        f.truncate(HEAD_DECLARES - 1)
    with pytest.raises(UsageError, match=f"truncated bzImage: {HEAD_DECLARES - 1} bytes, but"):
        inspect_kernel(cut)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\0" * 100, "too small"),
        (b"root:x:0:0:root:/root:/bin/bash\n" * 100, "no boot header magic"),
        (b"\x7fELF" + b"\0" * 4096, "ELF"),
    ],
)
def test_non_kernels_rejected(data, message):
    with pytest.raises(UsageError, match=message):
        parse_bzimage(data)


def test_arm64_image_rejected():
    data = bytearray(4096)
    data[0x38:0x3C] = b"ARM\x64"
    with pytest.raises(UsageError, match="arm64"):
        parse_bzimage(bytes(data))


def test_truncated_bzimage_rejected(data_dir):
    head = (data_dir / HEAD).read_bytes()
    ptr = struct.unpack_from("<H", head, 0x20E)[0] + 0x200
    with pytest.raises(UsageError, match="truncated"):
        parse_bzimage(head[: ptr + 4])


def test_missing_file_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file") as e:
        inspect_kernel(tmp_path / "bzImage")
    assert e.value.exit_code == 2


def test_default_kernel_is_newest_with_modules(tmp_path, data_dir):
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    head = (data_dir / HEAD).read_bytes()
    for release in ("6.1.0-9-amd64", "6.1.0-10-amd64", "6.5.0-1-amd64"):
        whole_bzimage(boot / f"vmlinuz-{release}", head)
    for release in ("6.1.0-9-amd64", "6.1.0-10-amd64"):  # 6.5 has no modules installed
        (mods / release).mkdir(parents=True)
        (mods / release / "modules.dep").write_text("")
    assert default_kernel(boot, mods).path.name == "vmlinuz-6.1.0-10-amd64"


def test_no_default_kernel_says_what_to_install(tmp_path):
    with pytest.raises(UsageError, match="apt-get install linux-image-amd64"):
        default_kernel(tmp_path, tmp_path)


def _elf_with_note(name: bytes, ntype: int) -> bytes:
    note = struct.pack("<III", len(name), 4, ntype) + name.ljust(4 * ((len(name) + 3) // 4), b"\0")
    note += b"\0" * 4
    phoff, notes_at = 64, 64 + 56
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x20, phoff)
    struct.pack_into("<HH", header, 0x36, 56, 1)
    ph = struct.pack("<IIQQQQQQ", 4, 0, notes_at, 0, 0, len(note), len(note), 4)
    return bytes(header) + ph + note


def test_pvh_note_detection():
    assert has_pvh_note(_elf_with_note(b"Xen\0", 18))
    assert not has_pvh_note(_elf_with_note(b"Xen\0", 17))
    assert not has_pvh_note(_elf_with_note(b"GNU\0", 18))
    assert not has_pvh_note(b"not an elf" * 10)
