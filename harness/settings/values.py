"""Setting values from text: each parser returns the value or raises ValueError saying what
was expected; the caller names where the text came from (a flag, a file:line)."""

import math
import re
from pathlib import Path

#: --accel: auto picks KVM only where it is real hardware virtualization.
ACCELS = ("auto", "kvm", "tcg")
#: --channel: how commands reach the guest (auto: SSH, else the console channel).
CHANNELS = ("auto", "ssh", "console")

_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_HUGEPAGE_KB = (2048, 1024 * 1024)


def parse_size_mb(text: str) -> int:
    """'3G' -> 3072, '512M' -> 512, '512' -> 512 (MiB)."""
    # [0-9], not \d: \d takes other scripts' digits, which QEMU and the kernel do not.
    m = re.fullmatch(r"\s*([0-9]+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError("not a size; expected e.g. 512M or 3G")
    mb = int(m.group(1)) * _UNITS[(m.group(2) or "M").upper()]
    if mb < 1 or mb != int(mb):
        raise ValueError("not a whole number of MiB; expected e.g. 512M or 3G")
    return int(mb)


def parse_hugepages(text: str) -> dict[int, int]:
    """'2M:64,1G:1' -> {2048: 64, 1048576: 1} (page size in KiB -> count)."""
    pools: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        size, sep, count = part.partition(":")
        if not sep or not re.fullmatch(r"\s*[0-9]+\s*", count):
            raise ValueError(f"entry {part!r} is not SIZE:COUNT; expected e.g. 2M:64,1G:1")
        try:
            kb = parse_size_mb(size) * 1024
        except ValueError:
            kb = 0
        if kb not in _HUGEPAGE_KB:
            raise ValueError(f"page size {size!r}: x86_64 supports 2M and 1G hugepages")
        if kb in pools:
            raise ValueError(f"page size {size} given twice")
        pools[kb] = int(count)
    return pools


def format_pagesize(kb: int) -> str:
    return f"{kb // (1024 * 1024)}G" if kb >= 1024 * 1024 else f"{kb // 1024}M"


def parse_count(text: str) -> int:
    """A whole number >= 1, in ASCII digits."""
    if not re.fullmatch(r"\s*[0-9]+\s*", text) or int(text) < 1:
        raise ValueError("expected a whole number >= 1")
    return int(text)


def parse_seconds(text: str) -> float:
    """A finite number of seconds > 0: nan would never expire, 0 or less always would."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError("expected a finite number of seconds > 0, e.g. 300")
    return value


def parse_word(text: str) -> str:
    """Non-empty text without blanks (a QEMU model name, a path)."""
    if not text.strip() or text != text.strip():
        raise ValueError("expected a non-empty value without leading or trailing blanks")
    return text


def parse_cmdline(text: str) -> str:
    """Kernel command-line words, separated by blanks, on one line."""
    words = text.split()
    if not words or any(not w.isprintable() for w in words) or "\n" in text:
        raise ValueError("expected kernel parameters on one line, e.g. 'mitigations=off nokaslr'")
    return " ".join(words)


def parse_choice(choices: tuple[str, ...]):
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def parse_directory(text: str) -> Path:
    """A path that is, or can be made, a directory: not a file, nothing under a file."""
    path = Path(parse_word(text))
    full = path.absolute()
    for p in (full, *full.parents):
        if p.exists():
            if not p.is_dir():
                what = "is" if p == full else f"is under {p}, which is"
                raise ValueError(f"{what} not a directory; give a new or existing directory")
            return path
    return path
