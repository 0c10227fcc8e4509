"""ELF program headers and notes, checked against readelf on a real executable."""

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness.kernel.elf import PT_INTERP, PT_NOTE, is_elf64, notes, program_headers

TRUE = Path("/bin/true")
PT_NAMES = {"INTERP": PT_INTERP, "NOTE": PT_NOTE, "LOAD": 1, "DYNAMIC": 2, "PHDR": 6}

pytestmark = pytest.mark.skipif(
    not (TRUE.is_file() and shutil.which("readelf")), reason="needs /bin/true and readelf"
)


def readelf(*args: str) -> str:
    return subprocess.run(
        ["readelf", "-W", *args, str(TRUE)], capture_output=True, text=True
    ).stdout


def test_program_headers_match_readelf():
    rows = re.findall(
        r"^\s+([A-Z_]+)\s+0x([0-9a-f]+) 0x\S+ 0x\S+ 0x([0-9a-f]+)", readelf("-l"), re.M
    )
    assert rows
    elf = TRUE.read_bytes()
    got = [(ph.offset, ph.filesz) for ph in program_headers(elf)]
    assert got == [(int(off, 16), int(size, 16)) for _, off, size in rows]
    types = [ph.type for ph in program_headers(elf)]
    assert [t for t in types if t in PT_NAMES.values()] == [
        PT_NAMES[name] for name, _, _ in rows if name in PT_NAMES
    ]
    (interp,) = [ph for ph in program_headers(elf) if ph.type == PT_INTERP]
    assert elf[interp.offset : interp.offset + interp.filesz].endswith(b"/ld-linux-x86-64.so.2\0")


def test_notes_match_readelf():
    owners = re.findall(r"^\s+(\S+)\s+0x([0-9a-f]+)\s", readelf("-n"), re.M)
    found = list(notes(TRUE.read_bytes()))
    assert [(n.name.decode(), len(n.desc)) for n in found] == [
        (owner, int(size, 16)) for owner, size in owners if owner != "Owner"
    ]
    build_id = re.search(r"Build ID: ([0-9a-f]+)", readelf("-n"))
    assert build_id
    assert [n.desc.hex() for n in found if n.type == 3] == [build_id.group(1)]  # NT_GNU_BUILD_ID


def test_not_an_elf64_has_no_headers():
    assert not is_elf64(b"#!/bin/sh\n")
    assert not is_elf64(b"\x7fELF\x01" + bytes(60))  # 32-bit
    assert program_headers(b"#!/bin/sh\n") == []
    assert list(notes(b"\x7fELF")) == []


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b.ljust((len(b) + 3) // 4 * 4, b"\0")

    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def test_notes_are_walked_over_their_padding():
    # A vmlinux's notes: "Linux\0" (namesz 6) with odd-sized descriptions, then Xen's.
    body = _note(b"Linux\0", 0x100, b"\x01\x02\x03\x04\x05") + _note(b"Xen\0", 18, bytes(8))
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<QHH", header, 0x20, 64, 0, 0)
    struct.pack_into("<HH", header, 0x36, 56, 1)
    ph = struct.pack("<IIQQQQQQ", PT_NOTE, 0, 64 + 56, 0, 0, len(body), len(body), 4)
    found = list(notes(bytes(header) + ph + body))
    assert [(n.name, n.type, n.desc) for n in found] == [
        (b"Linux", 0x100, b"\x01\x02\x03\x04\x05"),
        (b"Xen", 18, bytes(8)),
    ]


def test_a_truncated_elf_gives_what_is_there():
    elf = TRUE.read_bytes()
    whole = program_headers(elf)
    assert program_headers(elf[: 64 + 3 * 56 + 10]) == whole[:3]
    notes_at = min(ph.offset for ph in whole if ph.type == PT_NOTE)
    assert list(notes(elf[: notes_at + 40])) == list(notes(elf))[:1]
    assert program_headers(elf[:40]) == []
