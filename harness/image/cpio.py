"""A minimal writer for the newc cpio format the kernel unpacks as an initramfs."""

import stat
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class Entry:
    """One initramfs member. `data` is file content or a symlink target."""

    name: str  # path inside the archive, without a leading slash
    mode: int  # full st_mode, type bits included
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def file(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def chardev(name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: Entry, namesize: int) -> bytes:
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, *entry.rdev, namesize, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def write(out: BinaryIO, entries: list[Entry]) -> None:
    """Write entries (parents before children) with root ownership and mtime 0.

    Fixed metadata makes the archive a pure function of its entries, so equal inputs
    give byte-identical images.
    """
    for ino, entry in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = entry.name.lstrip("/").encode() + b"\0"
        head = _header(0 if entry.name == "TRAILER!!!" else ino, entry, len(name))
        out.write(head + name + _pad(len(head) + len(name)))
        out.write(entry.data + _pad(len(entry.data)))
