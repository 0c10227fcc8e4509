"""64-bit little-endian ELF program headers and notes, read from bytes (all x86_64 needs)."""

import struct
from collections.abc import Iterator
from dataclasses import dataclass

PT_INTERP = 3  # names the dynamic loader: absent from a static executable
PT_NOTE = 4


@dataclass(frozen=True)
class ProgramHeader:
    type: int
    offset: int  # in the file
    filesz: int


@dataclass(frozen=True)
class Note:
    name: bytes  # without its NUL padding, e.g. b"GNU", b"Xen"
    type: int
    desc: bytes


def is_elf64(data: bytes) -> bool:
    return data[:4] == b"\x7fELF" and len(data) > 4 and data[4] == 2


def program_headers(elf: bytes) -> list[ProgramHeader]:
    """The program header table; empty for anything but a 64-bit ELF. Of a truncated file
    (a kernel unpacked from a cut bzImage), the headers that are there."""
    if not is_elf64(elf) or len(elf) < 0x40:
        return []
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    headers = []
    for at in range(phoff, phoff + phnum * phentsize, phentsize):
        if at + 0x28 > len(elf):
            break
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, at)
        headers.append(ProgramHeader(p_type, p_offset, p_filesz))
    return headers


def notes(elf: bytes) -> Iterator[Note]:
    """Every note of every PT_NOTE segment, in file order."""
    for ph in program_headers(elf):
        if ph.type != PT_NOTE:
            continue
        pos, end = ph.offset, min(ph.offset + ph.filesz, len(elf))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            desc_at = pos + 12 + (namesz + 3) // 4 * 4
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            yield Note(name, ntype, elf[desc_at : desc_at + descsz])
            pos = desc_at + (descsz + 3) // 4 * 4
