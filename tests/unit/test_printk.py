"""Kernel log lines split into timestamp and message, on recorded console and dmesg text."""

from pathlib import Path

from harness.kernel.printk import PrintkLine, split_line, timestamped

BOOT_DMESG = Path(__file__).parent.parent / "data" / "crashes" / "guest-6.1-boot-dmesg.log"


def test_console_prefixes_are_stripped():
    def msg(line: str) -> str:
        return split_line(line).msg

    assert msg("[   12.345678] BUG: foo") == "BUG: foo"
    assert msg("[   12.345678][ T123] BUG: foo") == "BUG: foo"
    assert msg("<4>[    1.000000]  dump_stack_lvl+0x44/0x5c") == " dump_stack_lvl+0x44/0x5c"
    assert msg("** 3 printk messages dropped ** [   5.1] WARNING: x") == "WARNING: x"
    assert msg("syzkaller login: [   5.123456] BUG: x") == "BUG: x"
    # A kernel line glued to userspace output that had no newline yet.
    assert msg("uffd-harness: READY[   12.345678] kernel BUG at mm/x.c:1!") == (
        "kernel BUG at mm/x.c:1!"
    )
    assert msg("no prefix at all") == "no prefix at all"


def test_timestamps_and_prefix_flags():
    assert split_line("[   12.345678][ T123] BUG: foo\r") == split_line("[ 12.345678] BUG: foo")
    assert split_line("[   12.345678] BUG: foo").ts == 12.345678
    assert split_line("uffd-harness: READY[   12.345678] x").ts == 12.345678
    assert split_line("<4>WARNING: x") == PrintkLine("WARNING: x", None, True)
    assert not split_line("uffd-harness: READY").prefixed
    assert split_line("uffd-harness: READY").ts is None


def test_timestamped_lines_of_a_recorded_boot():
    body = "".join(
        line
        for line in BOOT_DMESG.read_text().splitlines(keepends=True)
        if not line.startswith("#")
    )
    lines = timestamped(body)
    assert len(lines) == len(body.splitlines())  # dmesg: every line carries its time
    assert lines[0] == (
        0.0,
        "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
        "12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP "
        "PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)",
    )
    assert next(t for t, m in lines if m == "Run /init as init process") == 4.519758
    # A console mixes userspace lines in: only the kernel's carry a time.
    assert timestamped("uffd-harness: READY\r\n[    7.035383] Run /init as init process\r\n") == [
        (7.035383, "Run /init as init process")
    ]
