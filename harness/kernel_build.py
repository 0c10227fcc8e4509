"""Kernels from source: `uffd-harness kernel build` and `uffd-harness kernel info`.

The pure parts come first and work on text (config fragments and .config files, Kconfig
dependencies, mbox series, the assessment of a config for the suite), so the unit tests
run them on recorded data. The parts that run git, patch and make follow, then the
argparse glue that cli.py registers with add_kernel_parser().
"""

from __future__ import annotations

import argparse
import dataclasses
import email.header
import email.parser
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import HarnessError, UsageError
from .cache import cache_root
from .kernel import (
    KernelImage,
    bzimage_payload,
    decompress_payload,
    default_kernel,
    inspect_kernel,
)
from .progress import Clock

Progress = Callable[[str, str], None]

BASES = ("defconfig", "tinyconfig")
#: The modules_install tree inside a build's --out directory.
MODULES_INSTALL = "modules-install"
BZIMAGE = Path("arch/x86/boot/bzImage")
BUILD_LOG = "build.log"
#: A fragment comment that makes the next option optional: a tree without it is accepted.
OPTIONAL_MARK = "# optional:"

# =========================================================================================
# Config text: .config files and fragments
# =========================================================================================

_SET = re.compile(r"CONFIG_([A-Za-z0-9_]+)=(.*)")
_UNSET = re.compile(r"# CONFIG_([A-Za-z0-9_]+) is not set")
_VALUE = re.compile(r'[ymn]|"(?:[^"\\]|\\.)*"|-?\d+|0[xX][0-9a-fA-F]+')


@dataclass(frozen=True)
class Option:
    """One requested option of a fragment."""

    name: str  # without the CONFIG_ prefix
    value: str  # y, m, n, a quoted string, or a number as written
    where: str  # "file:line"
    optional: str | None = None  # why the option may be missing from a tree

    def line(self) -> str:
        if self.value == "n":
            return f"# CONFIG_{self.name} is not set"
        return f"CONFIG_{self.name}={self.value}"


def parse_config(text: str) -> dict[str, str]:
    """A .config as {name: value}; "is not set" lines give "n"."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET.fullmatch(line):
            values[m[1]] = m[2]
        elif m := _UNSET.fullmatch(line):
            values[m[1]] = "n"
    return values


def parse_fragment(text: str, name: str) -> list[Option]:
    """A Kconfig fragment's options, in order. Malformed lines are errors (file:line), since
    Kconfig itself would skip them with a warning nobody reads."""
    options: list[Option] = []
    optional: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{name}:{n}"
        if m := _SET.fullmatch(line):
            value = m[2].strip()
            if not _VALUE.fullmatch(value):
                raise UsageError(
                    f"{where}: CONFIG_{m[1]}={value}: a value must be y, m, n, a number or "
                    'a "quoted string"'
                )
            options.append(Option(m[1], value, where, optional))
            optional = None
        elif m := _UNSET.fullmatch(line):
            options.append(Option(m[1], "n", where, optional))
            optional = None
        elif line.startswith(OPTIONAL_MARK):
            optional = line[len(OPTIONAL_MARK) :].strip() or "optional"
        elif line and not line.startswith("#"):
            raise UsageError(
                f"{where}: {line!r} is not a Kconfig line; expected CONFIG_NAME=VALUE, "
                "'# CONFIG_NAME is not set' or a # comment"
            )
    return options


def merge_fragments(fragments: Iterable[list[Option]]) -> tuple[dict[str, Option], list[str]]:
    """All options, the later fragment winning; and a note for each value overridden."""
    merged: dict[str, Option] = {}
    notes: list[str] = []
    for options in fragments:
        for opt in options:
            old = merged.get(opt.name)
            if old and old.value != opt.value:
                notes.append(f"{opt.where}: {opt.line()} overrides {old.where}: {old.line()}")
            merged[opt.name] = opt
    return merged, notes


def apply_options(base_text: str, requested: dict[str, Option]) -> str:
    """The base .config with the requested options in place of its own lines for them
    (what scripts/kconfig/merge_config.sh does); olddefconfig then resolves the rest."""
    kept = []
    for line in base_text.splitlines():
        m = _SET.fullmatch(line.strip()) or _UNSET.fullmatch(line.strip())
        if not (m and m[1] in requested):
            kept.append(line)
    kept.append("# -- merged by uffd-harness kernel build --")
    kept += [opt.line() for opt in requested.values()]
    return "\n".join(kept) + "\n"


def _same_value(wanted: str, got: str | None) -> bool:
    if wanted == "n":
        return got in (None, "n")
    if got is None:
        return False
    try:
        return int(wanted, 0) == int(got, 0)
    except ValueError:
        return wanted == got


@dataclass(frozen=True)
class Dropped:
    option: Option
    got: str | None  # the final value; None when the final config has no line for it
    why: tuple[str, ...] = ()

    def describe(self) -> str:
        got = "absent" if self.got is None else ("not set" if self.got == "n" else self.got)
        head = f"CONFIG_{self.option.name}={self.option.value} ({self.option.where}): got {got}"
        return "\n".join([head, *(f"    {w}" for w in self.why)])


def find_dropped(requested: dict[str, Option], final: dict[str, str]) -> list[Dropped]:
    """Requested options whose value did not survive olddefconfig."""
    return [
        Dropped(opt, final.get(name))
        for name, opt in requested.items()
        if not _same_value(opt.value, final.get(name))
    ]


# =========================================================================================
# Kconfig: just enough of the language to say why an option was dropped
# =========================================================================================


@dataclass
class Definition:
    where: str
    depends: list[str] = field(default_factory=list)  # own and inherited (if/menu/choice)
    prompts: list[str] = field(default_factory=list)  # prompt conditions; "" = always
    defaults: list[str] = field(default_factory=list)


@dataclass
class Symbol:
    name: str
    definitions: list[Definition] = field(default_factory=list)
    selected_by: list[str] = field(default_factory=list)  # "FOO" or "FOO if COND"


_ENTRY_WORDS = {"config", "menuconfig"}
_TYPE_WORDS = {"bool", "tristate", "string", "int", "hex"}
_SOURCE_WORDS = {"source", "rsource", "osource", "orsource"}
_DEPENDS = re.compile(r"(?:depends\s+on|visible\s+if)\s+(.*)")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) with backslash continuations joined."""
    pending, start = "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _split_if(rest: str) -> tuple[str, str]:
    """'"prompt" if COND' or 'EXPR if COND' -> (head, COND)."""
    m = re.match(r'^((?:"(?:[^"\\]|\\.)*"|[^"])*?)\s+if\s+(.*)$', rest)
    return (m[1].strip(), m[2].strip()) if m else (rest.strip(), "")


def _statements(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, keyword, rest) of each Kconfig statement, help texts and comments left
    out. A help text ends at the first line indented less than its own first line."""
    help_indent: int | None = None
    in_help = False
    for n, raw in _logical_lines(text):
        if in_help:
            if not raw.strip():
                continue
            if help_indent is None:
                help_indent = _indent(raw)
                continue
            if _indent(raw) >= help_indent:
                continue
            in_help = False
        line = raw.strip() if '"' in raw else raw.split("#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.replace("\t", " ").partition(" ")
        if word in ("help", "---help---"):
            in_help, help_indent = True, None
            continue
        yield n, word, rest.strip()


class KconfigIndex:
    """Symbols of a kernel tree, walked from the top Kconfig through every `source`.

    `read(path)` returns a file's text (relative to the tree) or None; taking a function
    keeps the walk testable on a few recorded Kconfig snippets.
    """

    def __init__(self, read: Callable[[str], str | None], srcarch: str = "x86"):
        self.read = read
        self.srcarch = srcarch
        self.symbols: dict[str, Symbol] = {}

    @classmethod
    def of_tree(cls, src: Path, srcarch: str = "x86") -> KconfigIndex:
        def read(rel: str) -> str | None:
            try:
                return (src / rel).read_text(errors="replace")
            except OSError:
                return None

        index = cls(read, srcarch)
        index.walk("Kconfig", [])
        return index

    def symbol(self, name: str) -> Symbol:
        return self.symbols.setdefault(name, Symbol(name))

    def walk(self, path: str, inherited: list[str]) -> None:
        text = self.read(path)
        if text is None:
            return
        stack: list[list[str]] = []  # the conditions of each open if/menu/choice
        entry: Definition | None = None  # the config entry whose attributes follow
        block: list[str] | None = None  # the menu/choice whose `depends on` follows
        owner = ""
        for n, word, rest in _statements(text):
            conds = inherited + [c for frame in stack for c in frame]
            if word in _ENTRY_WORDS:
                owner, block = rest, None
                entry = Definition(f"{path}:{n}", depends=list(conds))
                self.symbol(rest).definitions.append(entry)
            elif word in ("if", "menu", "choice"):
                stack.append([rest] if word == "if" else [])
                entry, block = None, (None if word == "if" else stack[-1])
            elif word in ("endif", "endmenu", "endchoice"):
                if stack:
                    stack.pop()
                entry = block = None
            elif word in _SOURCE_WORDS:
                entry = block = None
                self.walk(self._source_path(path, word, rest), conds)
            elif word in ("comment", "mainmenu"):
                entry = block = None
            elif m := _DEPENDS.fullmatch(f"{word} {rest}"):
                target = entry.depends if entry is not None else block
                if target is not None:
                    target.append(m[1])
            elif entry is not None:
                self._attribute(entry, owner, word, rest)

    def _source_path(self, path: str, word: str, rest: str) -> str:
        target = rest.strip('"').replace("$(SRCARCH)", self.srcarch)
        return str(Path(path).parent / target) if word in ("rsource", "orsource") else target

    def _attribute(self, entry: Definition, owner: str, word: str, rest: str) -> None:
        if word in _TYPE_WORDS or word == "prompt":
            head, cond = _split_if(rest)
            if head.startswith('"'):
                entry.prompts.append(cond)
        elif word in ("def_bool", "def_tristate", "default"):
            entry.defaults.append(rest)
        elif word == "select":
            target, cond = _split_if(rest)
            self.symbol(target).selected_by.append(f"{owner} if {cond}" if cond else owner)


# -- Kconfig expressions -------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(\|\||&&|!=|<=|>=|[=<>!()]|"(?:[^"\\]|\\.)*"|\$\([^)]*\)|[\w.-]+)')


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            break
        out.append(m[1])
        pos = m.end()
    return out


class _Expr:
    """A Kconfig expression evaluated to 0 (n), 1 (m) or 2 (y) against a config."""

    def __init__(self, expr: str, values: dict[str, str]):
        self.toks = _tokens(expr)
        self.pos = 0
        self.values = values

    def value(self) -> int:
        try:
            return self._or()
        except IndexError:
            return 2  # unparsable: assume met rather than blame the wrong thing

    def _peek(self) -> str | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _next(self) -> str:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def _or(self) -> int:
        v = self._and()
        while self._peek() == "||":
            self._next()
            v = max(v, self._and())
        return v

    def _and(self) -> int:
        v = self._not()
        while self._peek() == "&&":
            self._next()
            v = min(v, self._not())
        return v

    def _not(self) -> int:
        if self._peek() == "!":
            self._next()
            return 2 - self._not()
        return self._compare()

    def _compare(self) -> int:
        if self._peek() == "(":
            self._next()
            v = self._or()
            if self._peek() == ")":
                self._next()
            return v
        left = self._next()
        op = self._peek()
        if op in ("=", "!=", "<", ">", "<=", ">="):
            self._next()
            return 2 if _compare(self._raw(left), op, self._raw(self._next())) else 0
        return self._tristate(left)

    def _raw(self, tok: str) -> str:
        if tok.startswith('"'):
            return tok[1:-1]
        if tok in ("y", "m", "n"):
            return tok
        if tok not in self.values and re.fullmatch(r"-?\d+|0[xX][0-9a-fA-F]+", tok):
            return tok  # a number constant
        return self.values.get(tok, "n").strip('"')

    def _tristate(self, tok: str) -> int:
        if tok.startswith("$("):
            return 2  # a shell/compiler test: Kconfig already ran it, assume met
        return {"y": 2, "m": 1}.get(self._raw(tok), 0)


def _compare(a: str, op: str, b: str) -> bool:
    if op in ("=", "!="):
        return (a == b) == (op == "=")
    try:
        x, y = int(a, 0), int(b, 0)
    except ValueError:
        return False
    return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def eval_expr(expr: str, values: dict[str, str]) -> int:
    return _Expr(expr, values).value()


def _annotate(expr: str, values: dict[str, str]) -> str:
    """'A && B' -> 'A && B [A=y, B=n]', like menuconfig's help does."""
    names = [t for t in _tokens(expr) if re.fullmatch(r"[A-Z_][A-Z0-9_]*", t)]
    shown = ", ".join(f"{s}={values.get(s, 'n')}" for s in dict.fromkeys(names))
    return f"{expr} [{shown}]" if shown else expr


def _selector_on(selector: str, values: dict[str, str]) -> bool:
    name, _, cond = selector.partition(" if ")
    return eval_expr(f"{name} && ({cond})" if cond else name, values) > 0


def _setters(sym: Symbol, d: Definition, values: dict[str, str]) -> str:
    parts = []
    if sym.selected_by:
        parts.append(
            "a select from " + ", ".join(_annotate(s, values) for s in sym.selected_by[:5])
        )
    if d.defaults:
        parts.append("its default " + " / ".join(_annotate(e, values) for e in d.defaults))
    return " or ".join(parts) or "nothing (it is always off here)"


def explain(sym: Symbol | None, wanted: str, values: dict[str, str]) -> list[str]:
    """Why Kconfig did not give `sym` the wanted value, as far as its definitions tell."""
    if sym is None or not sym.definitions:
        return ["no such option in this tree (misspelt, renamed or removed?)"]
    if wanted == "n":
        on = [s for s in sym.selected_by if _selector_on(s, values)]
        if on:
            return [f"forced on by a select from {', '.join(on)}"]
        fixed = [d for d in sym.definitions if not d.prompts]
        return [f"no prompt ({d.where}): set by {_setters(sym, d, values)}" for d in fixed] or [
            "no select or hidden prompt found that keeps it on (a choice?)"
        ]
    need = 2 if wanted == "y" else 1
    why: list[str] = []
    for d in sym.definitions:
        unmet = [e for e in d.depends if eval_expr(e, values) < need]
        if unmet:
            why += [f"unmet: depends on {_annotate(e, values)} ({d.where})" for e in unmet]
        elif not d.prompts:
            why.append(f"no prompt ({d.where}): set only by {_setters(sym, d, values)}")
        elif all(c and eval_expr(c, values) == 0 for c in d.prompts):
            conds = " or ".join(_annotate(c, values) for c in d.prompts)
            why.append(f"unmet: its prompt needs {conds} ({d.where})")
    return why or ["no unmet dependency found (a choice, a range, or a select elsewhere?)"]


# =========================================================================================
# Patch series: mbox files and directories of patches
# =========================================================================================

_MBOX_FROM = re.compile(r"^From \S+ +\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\s*$", re.M)
_HAS_DIFF = re.compile(r"^(diff --git |--- \S.*\n\+\+\+ \S)", re.M)
_PATCH_NUM = re.compile(r"\[[^\]]*?\b(\d+)/(\d+)\s*\]")
PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".mbx", ".eml")


@dataclass(frozen=True)
class Patch:
    source: str  # the file it came from
    number: int  # position among the file's messages, from 1
    subject: str
    text: str

    @property
    def has_diff(self) -> bool:
        return bool(_HAS_DIFF.search(self.text))

    @property
    def series_number(self) -> int | None:
        m = _PATCH_NUM.search(self.subject)
        return int(m[1]) if m else None

    def name(self) -> str:
        return f"{self.source} message {self.number}: {self.subject!r}"


def split_mbox(text: str) -> list[str]:
    """The messages of an mbox; a file with no mbox separator is a single message."""
    starts = [m.start() for m in _MBOX_FROM.finditer(text)]
    if not starts:
        return [text] if text.strip() else []
    bounds = [*starts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _subject(message: str) -> str:
    headers = email.parser.HeaderParser().parsestr(message.split("\n", 1)[-1])
    raw = headers.get("Subject")
    if not raw:
        first = next((ln for ln in message.splitlines() if ln.strip()), "")
        return first[:80]
    parts = email.header.decode_header(str(raw))
    text = "".join(
        p.decode(c or "utf-8", "replace") if isinstance(p, bytes) else p for p, c in parts
    )
    return " ".join(text.split())


def series_from_text(text: str, source: str) -> tuple[list[Patch], list[str]]:
    """The patches of one series, in series order, and notes on what was skipped.

    A lore thread mbox holds a cover letter and replies besides the patches, and may list
    them in arrival order: messages without a diff are skipped, and numbered patches
    ([PATCH n/m]) are put in their numbered order.
    """
    patches, notes = [], []
    for i, message in enumerate(split_mbox(text), 1):
        p = Patch(source, i, _subject(message), message)
        if p.has_diff:
            patches.append(p)
        else:
            notes.append(f"skipped {p.name()}: no diff in it (cover letter or reply)")
    numbers = [p.series_number for p in patches]
    if None not in numbers and len(set(numbers)) == len(numbers):
        patches.sort(key=lambda p: p.series_number or 0)
    return patches, notes


def load_series(path: Path) -> tuple[list[Patch], list[str]]:
    """A --patches argument: an mbox file, or a directory of patch/mbox files in name order."""
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix in PATCH_SUFFIXES and f.is_file())
        if not files:
            raise UsageError(
                f"--patches {path}: no {'/'.join('*' + s for s in PATCH_SUFFIXES)} files in it"
            )
    elif path.is_file():
        files = [path]
    else:
        raise UsageError(f"--patches {path}: no such file or directory")
    patches: list[Patch] = []
    notes: list[str] = []
    for f in files:
        p, n = series_from_text(f.read_text(errors="replace"), str(f))
        patches += p
        notes += n
    if not patches:
        raise UsageError(f"--patches {path}: no patch in it (no message with a diff)")
    return patches, notes


# =========================================================================================
# The config as the suite sees it (`kernel info`, and warnings before a boot)
# =========================================================================================


@dataclass(frozen=True)
class Check:
    option: str
    consequence: str  # what happens when the option is missing
    group: str = "uffd"  # uffd | guest | debug
    modular_ok: bool = False  # =m is fine when the guest image gets the modules
    after: str | None = None  # not worth a warning of its own when this option is off
    warn: bool = True  # False: shown for information only


#: What the suite needs from a kernel config, and what it costs to lack each option.
CHECKS: tuple[Check, ...] = (
    Check("USERFAULTFD", "every uffd workload will skip"),
    Check("HAVE_ARCH_USERFAULTFD_WP", "every uffd-wp workload will skip", after="USERFAULTFD"),
    Check(
        "HAVE_ARCH_USERFAULTFD_MINOR",
        "every minor-fault workload will skip",
        after="USERFAULTFD",
    ),
    Check(
        "PTE_MARKER_UFFD_WP",
        "uffd-wp on shmem and hugetlb will skip (kernels before 5.19 lack it)",
        after="USERFAULTFD",
    ),
    Check("HUGETLBFS", "every hugetlb workload will skip"),
    Check("TRANSPARENT_HUGEPAGE", "the anon-thp workloads will skip"),
    Check("SHMEM", "shmem is ramfs-backed: the shmem workloads will not test shmem"),
    Check("TMPFS", "no tmpfs: /tmp and /dev/shm cannot be mounted in the guest"),
    Check("MEMFD_CREATE", "no memfd_create(): shmem and hugetlb workloads will skip"),
    Check("ADVISE_SYSCALLS", "no madvise(): MADV_PAGEOUT and MADV_HUGEPAGE workloads fail"),
    Check("PROC_PAGE_MONITOR", "no /proc/PID/pagemap: the pagemap checks will skip"),
    Check("SWAP", "no swap: the swap-based uffd-wp workloads will skip"),
    Check("ZRAM", "no zram: the guest has no swap device, swap workloads will skip", "uffd", True),
    Check("VIRTIO_PCI", "the guest has no network: SSH is impossible", "guest", True),
    Check("VIRTIO_NET", "the guest has no network: SSH is impossible", "guest", True),
    Check("SERIAL_8250_CONSOLE", "no serial console: crashes cannot be seen", "guest"),
    Check("DEVTMPFS", "the guest init cannot mount /dev", "guest"),
    Check("BLK_DEV_INITRD", "the guest image (an initramfs) cannot be loaded", "guest"),
    Check("UNIX98_PTYS", "no ptys: dropbear cannot open sessions", "guest"),
    Check("MULTIUSER", "no users/capabilities: dropbear cannot run", "guest"),
    Check("HW_RANDOM_VIRTIO", "dropbear may wait long for entropy", "guest", True),
    Check("MAGIC_SYSRQ", "no SysRq: a hung guest cannot be asked for task dumps", "guest"),
    Check("PVH", "no PVH entry: each boot is ~8 s slower under TCG", "guest"),
    Check("IKCONFIG", "the config is not embedded in the kernel", "guest", warn=False),
    Check("DEBUG_VM", "VM_BUG_ON checks are off", "debug"),
    Check("PAGE_TABLE_CHECK", "page table accounting checks are off", "debug"),
    Check("PROVE_LOCKING", "lockdep is off", "debug"),
    Check("DEBUG_ATOMIC_SLEEP", "sleeping in atomic context goes unreported", "debug"),
    Check("KASAN", "no KASAN: memory-safety bugs may pass silently", "debug"),
    Check("LKDTM", "no LKDTM: crash detection cannot be tested on this kernel", "debug"),
)


@dataclass(frozen=True)
class Finding:
    check: Check
    value: str  # y, m or n
    problem: str | None  # the warning; None when fine or covered by another warning


def _problem(check: Check, value: str, values: dict[str, str], have_modules: bool) -> str | None:
    if not check.warn or check.group == "debug" or value == "y":
        return None
    if check.after and values.get(check.after) != "y":
        return None
    name = f"CONFIG_{check.option}"
    if value == "m" and check.modular_ok:
        if have_modules:
            return None
        return f"{name} is a module but no modules tree was found: {check.consequence}"
    return f"{name} {'is a module' if value == 'm' else 'is not set'}: {check.consequence}"


def assess_config(values: dict[str, str], have_modules: bool = False) -> list[Finding]:
    """One finding per checked option, with a warning for what the suite will miss."""
    return [
        Finding(
            c,
            values.get(c.option, "n"),
            _problem(c, values.get(c.option, "n"), values, have_modules),
        )
        for c in CHECKS
    ]


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


def split_version(version: str) -> tuple[str, str]:
    """'6.1.0-56-amd64 (debian-kernel@...) #1 SMP ...' -> (release, the build string)."""
    release, _, build = version.partition(" ")
    return release, build.strip()


# =========================================================================================
# Finding a kernel's config and modules on disk
# =========================================================================================


@dataclass(frozen=True)
class ConfigSource:
    kind: str  # "embedded", "build tree", "/boot"
    path: Path | None
    text: str

    def describe(self) -> str:
        if self.kind == "embedded":
            return "embedded in the kernel (CONFIG_IKCONFIG)"
        return f"{self.kind}: {self.path}"


def build_tree_of(kernel: KernelImage) -> Path | None:
    """The build (or --out) directory of a bzImage at <tree>/arch/x86/boot/bzImage."""
    for path in (kernel.path.absolute(), kernel.path.resolve()):
        if path.parts[-4:] == ("arch", "x86", "boot", "bzImage"):
            return path.parents[3]
    return None


def _embedded_config_of(image: Path, cache: Path | None) -> str | None:
    """The IKCONFIG of a bzImage. Unpacking an xz distro kernel takes seconds and every boot
    asks, so the answer (even "none") is cached by the image's content."""
    data = image.read_bytes()
    entry = None
    if cache:
        entry = cache / "kconfig" / hashlib.sha256(data).hexdigest()[:32]
        if entry.exists():
            return entry.read_text() or None
    payload = bzimage_payload(data)
    unpacked = decompress_payload(*payload) if payload else None
    text = embedded_config(unpacked) if unpacked else None
    if entry:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}")
        tmp.write_text(text or "")
        os.replace(tmp, entry)
    return text


def config_sources(
    kernel: KernelImage, boot: Path = Path("/boot"), cache: Path | None = None
) -> list[ConfigSource]:
    """Every config found for this kernel, the most trustworthy first."""
    found: list[ConfigSource] = []
    if text := _embedded_config_of(kernel.path, cache):
        found.append(ConfigSource("embedded", None, text))
    tree = build_tree_of(kernel)
    if tree and (tree / ".config").is_file():
        found.append(ConfigSource("build tree", tree / ".config", (tree / ".config").read_text()))
    boot_config = boot / f"config-{kernel.release}"
    if boot_config.is_file():
        found.append(ConfigSource("/boot", boot_config, boot_config.read_text()))
    return found


def find_modules_tree(kernel: KernelImage, system: Path = Path("/lib/modules")) -> Path | None:
    """Where this kernel's modules are: a build's modules_install tree, else the system's.

    A modules tree counts only with a modules.dep (depmod has run), since the image
    builder resolves driver dependencies from it.
    """
    tree = build_tree_of(kernel)
    candidates = []
    if tree:
        candidates.append(tree / MODULES_INSTALL / "lib" / "modules" / kernel.release)
    candidates.append(system / kernel.release)
    return next((c for c in candidates if (c / "modules.dep").is_file()), None)


def config_warnings(kernel: KernelImage) -> list[str]:
    """What a boot of this kernel will lack, for the harness to print before booting."""
    sources = config_sources(kernel, cache=cache_root())
    if not sources:
        return [
            f"{kernel.path}: no config found (no embedded IKCONFIG, no .config beside it, "
            f"no /boot/config-{kernel.release}); cannot tell what the suite will skip"
        ]
    values = parse_config(sources[0].text)
    findings = assess_config(values, find_modules_tree(kernel) is not None)
    return [f.problem for f in findings if f.problem]


# =========================================================================================
# Running things: patch application
# =========================================================================================


def _run(argv: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[int, str]:
    p = subprocess.run(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    return p.returncode, (p.stdout + p.stderr).strip()


def is_git_toplevel(src: Path) -> bool:
    """True for the top of a git work tree (not a plain tree inside some other repo)."""
    if not shutil.which("git"):
        return False
    rc, out = _run(["git", "-C", str(src), "rev-parse", "--show-toplevel"])
    return rc == 0 and Path(out).resolve() == src.resolve()


def _excerpt(output: str, lines: int = 8) -> str:
    kept = [ln for ln in output.splitlines() if ln.strip()][:lines]
    return "\n".join(f"    {ln}" for ln in kept)


class _Applier:
    """Applies patches one by one and can put the tree back as it was."""

    def __init__(self, src: Path):
        self.src = src

    def check(self, patch_file: Path, reverse: bool = False) -> tuple[bool, str]:
        raise NotImplementedError

    def apply(self, patch_file: Path) -> tuple[bool, str]:
        raise NotImplementedError

    def restore(self) -> str:
        raise NotImplementedError


class _GitApplier(_Applier):
    def __init__(self, src: Path):
        super().__init__(src)
        rc, dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], src)
        if rc != 0 or dirty:
            raise UsageError(
                f"--src {src}: the git tree has uncommitted changes; commit or stash them "
                "first (patches are applied with git am, and undone with git reset on failure)"
            )
        if (src / ".git" / "rebase-apply").exists():
            raise UsageError(f"--src {src}: a git am or rebase is in progress; finish it first")
        self.head = _run(["git", "rev-parse", "HEAD"], src)[1]
        # git am needs a committer; a CI box often has no git identity configured.
        has_identity = _run(["git", "config", "user.email"], src)[0] == 0
        self.git = ["git"] + (
            []
            if has_identity
            else ["-c", "user.name=uffd-harness", "-c", "user.email=uffd@localhost"]
        )

    def check(self, patch_file: Path, reverse: bool = False) -> tuple[bool, str]:
        rc, out = _run(
            ["git", "apply", "--check", *(["-R"] if reverse else []), str(patch_file)], self.src
        )
        return rc == 0, out

    def apply(self, patch_file: Path) -> tuple[bool, str]:
        rc, out = _run([*self.git, "am", "--quiet", str(patch_file)], self.src)
        if rc != 0:
            _run(["git", "am", "--abort"], self.src)
        return rc == 0, out

    def restore(self) -> str:
        _run(["git", "reset", "--hard", "--quiet", self.head], self.src)
        return f"git reset --hard {self.head[:12]}: the tree is back where it was"


class _PlainApplier(_Applier):
    # -f: never ask; -r -: no .rej files; the dry run (not silenced) names the failing files.
    PATCH = ["patch", "-p1", "-f", "--no-backup-if-mismatch", "-r", "-"]

    def __init__(self, src: Path):
        super().__init__(src)
        self.applied: list[Path] = []

    def check(self, patch_file: Path, reverse: bool = False) -> tuple[bool, str]:
        argv = [*self.PATCH, "--dry-run", *(["-R"] if reverse else []), "-i", str(patch_file)]
        rc, out = _run(argv, self.src)
        return rc == 0, out

    def apply(self, patch_file: Path) -> tuple[bool, str]:
        rc, out = _run([*self.PATCH, "-s", "-i", str(patch_file)], self.src)
        if rc == 0:
            self.applied.append(patch_file)
        return rc == 0, out

    def restore(self) -> str:
        for patch_file in reversed(self.applied):
            _run([*self.PATCH, "-s", "-R", "-i", str(patch_file)], self.src)
        n = len(self.applied)
        self.applied.clear()
        if not n:
            return "nothing was applied: the tree is as it was"
        return f"the {n} patch{'es' if n > 1 else ''} this run applied reversed with patch -R"


def apply_series(src: Path, series: list[Path], progress: Progress) -> None:
    """Apply every --patches series in order; on a failure, undo them all and raise."""
    loaded = [load_series(path) for path in series]  # all parse errors before any change
    patches = [p for ps, _ in loaded for p in ps]
    for _, notes in loaded:
        for note in notes:
            progress("patch", note)
    git = is_git_toplevel(src)
    if not git and not shutil.which("patch"):
        raise HarnessError("`patch` is not installed: apt-get install patch")
    applier: _Applier = _GitApplier(src) if git else _PlainApplier(src)
    tool = "git am" if git else "patch -p1"
    with tempfile.TemporaryDirectory(prefix="uffd-patch-") as tmp:
        for i, patch in enumerate(patches, 1):
            f = Path(tmp) / f"{i:04d}.patch"
            f.write_text(patch.text)
            ok, out = applier.check(f)
            if not ok and applier.check(f, reverse=True)[0]:
                progress(
                    "patch", f"{i}/{len(patches)} already in the tree, skipped: {patch.subject}"
                )
                continue
            if ok:
                ok, out = applier.apply(f)
            if not ok:
                undo = applier.restore()
                raise HarnessError(
                    f"patch {i}/{len(patches)} does not apply ({tool}): {patch.name()}\n"
                    f"{_excerpt(out)}\n{undo}; fix or rebase the series, or use another tree"
                )
            progress("patch", f"{i}/{len(patches)} applied: {patch.subject}")


# =========================================================================================
# Running things: make, with progress and a full log
# =========================================================================================

_STEP = re.compile(r"^\s+([A-Z][A-Z0-9_]*)\s+(\S+)")


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


class Make:
    """`make` in the source tree with O=out, logging everything to one file."""

    PROGRESS_EVERY = 20.0

    def __init__(self, src: Path, out: Path, jobs: int, log: Path, progress: Progress):
        self.src, self.out, self.jobs, self.log, self.progress = src, out, jobs, log, progress
        self.compiler = "ccache gcc" if shutil.which("ccache") else None

    def argv(self, *targets: str, **variables: str) -> list[str]:
        argv = ["make", "-C", str(self.src), f"O={self.out}", "ARCH=x86_64", f"-j{self.jobs}"]
        if self.compiler:
            argv.append(f"CC={self.compiler}")
        argv += [f"{k}={v}" for k, v in variables.items()]
        return argv + list(targets)

    def __call__(self, phase: str, *targets: str, **variables: str) -> None:
        argv = self.argv(*targets, **variables)
        start = time.monotonic()
        last_report, steps, last_step = start, 0, ""
        tail: deque[str] = deque(maxlen=40)
        with self.log.open("a") as log:
            log.write(f"\n=== {phase}: {' '.join(argv)}\n")
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            assert proc.stdout
            try:
                for line in proc.stdout:
                    log.write(line)
                    tail.append(line.rstrip())
                    if m := _STEP.match(line):
                        steps, last_step = steps + 1, f"{m[1]} {m[2]}"
                    now = time.monotonic()
                    if now - last_report >= self.PROGRESS_EVERY:
                        last_report = now
                        self.progress(
                            phase, f"{steps} steps, {_elapsed(now - start)} ({last_step})"
                        )
                rc = proc.wait()
            finally:
                if proc.poll() is None:  # interrupted: make stops its own jobs on SIGTERM
                    proc.terminate()
                    proc.wait()
        if rc != 0:
            errors = [ln for ln in tail if re.search(r"error|Error|\*\*\*", ln)] or list(tail)
            raise HarnessError(
                f"{phase} failed: `make {' '.join(targets)}` exited {rc} after "
                f"{_elapsed(time.monotonic() - start)}; the last errors:\n"
                + "\n".join(f"    {ln}" for ln in errors[-12:])
                + f"\nfull log: {self.log}"
            )
        took = _elapsed(time.monotonic() - start)
        self.progress(phase, f"make {' '.join(targets)}: done in {took} ({steps} steps)")


@dataclass
class BuildRequest:
    src: Path
    out: Path
    base: str = "defconfig"
    fragments: list[Path] = field(default_factory=list)
    patches: list[Path] = field(default_factory=list)
    jobs: int = 0
    allow_dropped: bool = False


def _check_tree(src: Path, out: Path) -> None:
    if not (src / "Makefile").is_file() or not (src / "arch" / "x86" / "Kconfig").is_file():
        raise UsageError(f"--src {src}: not a Linux source tree (no Makefile, arch/x86/Kconfig)")
    if (src / ".config").exists() or (src / "include" / "config").is_dir():
        raise UsageError(
            f"--src {src}: the tree has an in-tree build (.config); out-of-tree builds need a "
            f"clean tree: run `make -C {src} mrproper` (deletes that build) or use a fresh tree"
        )
    if out.resolve() == src.resolve():
        raise UsageError("--out must not be the source tree; builds are out of tree")
    other = built_from(out)
    if other and other.resolve() != src.resolve():
        # make would reuse objects compiled from the other tree wherever they look newer.
        raise UsageError(
            f"--out {out} holds a build of another tree ({other}); use another --out, or "
            f"delete {out} first"
        )


def built_from(out: Path) -> Path | None:
    """The source tree of an existing build directory, from the Makefile kbuild puts there
    ("include /path/to/linux/Makefile")."""
    try:
        text = (out / "Makefile").read_text()
    except OSError:
        return None
    m = re.search(r"^include (\S+)/Makefile$", text, re.M)
    return Path(m[1]) if m else None


def _check_tools() -> None:
    missing = [t for t in ("make", "gcc", "flex", "bison", "bc") if not shutil.which(t)]
    if missing:
        raise HarnessError(
            f"missing build tools: {', '.join(missing)}; apt-get install make gcc flex bison bc"
        )


def _check_libelf(values: dict[str, str]) -> None:
    # objtool links against libelf; without the headers the build fails late and obscurely.
    if values.get("OBJTOOL") == "y" and not Path("/usr/include/gelf.h").exists():
        raise HarnessError(
            "CONFIG_OBJTOOL=y needs the libelf headers objtool links against: "
            "apt-get install libelf-dev"
        )


def _base_config(req: BuildRequest, make: Make, progress: Progress) -> None:
    if req.base in BASES:
        make("config", req.base)
        return
    base = Path(req.base)
    if not base.is_file():
        raise UsageError(f"--base {req.base}: expected {' or '.join(BASES)}, or a config file")
    shutil.copyfile(base, req.out / ".config")
    progress("config", f"base config {base}")


def read_fragments(paths: list[Path]) -> dict[str, Option]:
    for f in paths:
        if not f.is_file():
            raise UsageError(f"--config {f}: no such file")
    requested, _ = merge_fragments(parse_fragment(f.read_text(), str(f)) for f in paths)
    return requested


def verify(
    requested: dict[str, Option], final: dict[str, str], src: Path
) -> tuple[list[Dropped], list[Dropped]]:
    """(fatal, tolerated) dropped options, each with Kconfig's reasons. Tolerated: marked
    optional in its fragment and absent from this tree."""
    dropped = find_dropped(requested, final)
    if not dropped:
        return [], []
    index = KconfigIndex.of_tree(src)
    fatal, tolerated = [], []
    for d in dropped:
        sym = index.symbols.get(d.option.name)
        d = Dropped(d.option, d.got, tuple(explain(sym, d.option.value, final)))
        absent = sym is None or not sym.definitions
        (tolerated if absent and d.option.optional else fatal).append(d)
    return fatal, tolerated


def configure(req: BuildRequest, make: Make, progress: Progress) -> dict[str, str]:
    """Base config + fragments + olddefconfig, verified; returns the final config."""
    fragments = [parse_fragment(f.read_text(), str(f)) for f in req.fragments]
    requested, overrides = merge_fragments(fragments)
    for note in overrides:
        progress("config", note)
    _base_config(req, make, progress)
    config = req.out / ".config"
    config.write_text(apply_options(config.read_text(), requested))
    make("config", "olddefconfig")
    final = parse_config(config.read_text())
    fatal, tolerated = verify(requested, final, req.src)
    for d in tolerated:
        progress(
            "config", f"not in this tree, optional: CONFIG_{d.option.name} ({d.option.optional})"
        )
    if not fatal:
        progress("config", f"all {len(requested) - len(tolerated)} requested options are set")
        return final
    text = "\n".join(d.describe() for d in fatal)
    if not req.allow_dropped:
        raise HarnessError(
            f"{len(fatal)} requested option(s) did not survive olddefconfig:\n{text}\n"
            "add what they depend on to the fragments, or pass --allow-dropped"
        )
    progress("config", f"dropped, allowed by --allow-dropped:\n{text}")
    return final


def build_kernel(req: BuildRequest, progress: Progress) -> Path:
    """Patch, configure, build (and install modules); returns the bzImage under req.out."""
    src, out = req.src.resolve(), req.out.resolve()
    _check_tree(src, out)
    _check_tools()
    read_fragments(req.fragments)  # every fragment error before the tree is touched
    out.mkdir(parents=True, exist_ok=True)
    log = out / BUILD_LOG
    log.write_text(f"uffd-harness kernel build: src={src} out={out} base={req.base}\n")
    make = Make(src, out, req.jobs or os.cpu_count() or 1, log, progress)
    progress("start", f"log {log}; compiler {make.compiler or 'gcc'}; -j{make.jobs}")
    if req.patches:
        apply_series(src, req.patches, progress)
    final = configure(dataclasses.replace(req, src=src, out=out), make, progress)
    _check_libelf(final)
    modular = final.get("MODULES") == "y"
    make("build", "bzImage", *(["modules"] if modular else []))
    if modular:
        install_modules(make, out, progress)
    else:
        progress("modules", "none: CONFIG_MODULES is not set, everything is built in")
    return req.out / BZIMAGE


def install_modules(make: Make, out: Path, progress: Progress) -> Path:
    target = out / MODULES_INSTALL
    shutil.rmtree(target, ignore_errors=True)  # no stale modules of an earlier config
    make("modules_install", "modules_install", INSTALL_MOD_PATH=str(target), INSTALL_MOD_STRIP="1")
    deps = list(target.glob("lib/modules/*/modules.dep"))
    if not deps:
        raise HarnessError(
            f"modules_install wrote no modules.dep under {target}: is depmod installed? "
            "(apt-get install kmod)"
        )
    progress("modules", f"installed in {deps[0].parent}")
    return deps[0].parent


# =========================================================================================
# Command line
# =========================================================================================


def cmd_kernel_build(args: argparse.Namespace) -> int:
    clock = Clock()
    req = BuildRequest(
        src=args.src,
        out=args.out or Path("build") / args.src.resolve().name,
        base=args.base,
        fragments=args.config,
        patches=args.patches,
        jobs=args.jobs,
        allow_dropped=args.allow_dropped,
    )
    bzimage = build_kernel(req, clock)
    size = bzimage.stat().st_size / 2**20
    clock("done", f"{inspect_kernel(bzimage).release}, {size:.1f} MiB")
    print(bzimage, flush=True)
    return 0


def _resolve_kernel(arg: str | None) -> KernelImage:
    if arg is None:
        return default_kernel()
    path = Path(arg)
    if not path.exists() and (Path("/boot") / f"vmlinuz-{arg}").exists():
        path = Path("/boot") / f"vmlinuz-{arg}"  # a release name
    return inspect_kernel(path)


def format_info(kernel: KernelImage, sources: list[ConfigSource], modules: Path | None) -> str:
    release, build = split_version(kernel.version)
    lines = [f"kernel:   {kernel.path}", f"release:  {release}", f"build:    {build}"]
    if not sources:
        lines.append(
            "config:   not found (no embedded IKCONFIG, no .config beside the "
            f"bzImage, no /boot/config-{release})"
        )
        return "\n".join(lines)
    values = parse_config(sources[0].text)
    lines.append(f"config:   {sources[0].describe()}")
    for other in sources[1:]:
        same = parse_config(other.text) == values
        lines.append(f"          also {other.describe()} ({'same' if same else 'DIFFERENT'})")
    if values.get("MODULES") == "y":
        lines.append(f"modules:  {modules or 'none found (no modules.dep for this release)'}")
    else:
        lines.append("modules:  none needed: CONFIG_MODULES is not set, everything is built in")
    findings = assess_config(values, modules is not None)
    for group, title in (("uffd", "uffd options"), ("guest", "guest image"), ("debug", "debug")):
        lines.append(f"{title}:")
        for f in findings:
            if f.check.group == group:
                shown = {"y": "y", "m": "m"}.get(f.value, "not set")
                lines.append(f"  CONFIG_{f.check.option:<28} {shown}")
    problems = [f.problem for f in findings if f.problem]
    lines.append("warnings:" if problems else "warnings: none")
    lines += [f"  {p}" for p in problems]
    return "\n".join(lines)


def cmd_kernel_info(args: argparse.Namespace) -> int:
    kernel = _resolve_kernel(args.kernel)
    sources = config_sources(kernel, cache=cache_root())
    print(format_info(kernel, sources, find_modules_tree(kernel)))
    return 0


def add_kernel_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `kernel build` and `kernel info` on the top-level subcommands."""
    k = subparsers.add_parser(
        "kernel",
        help="build a kernel from source (with patch series); show what a kernel offers",
        description="Build kernels for the suite, and inspect kernel images.",
    )
    sub = k.add_subparsers(dest="kernel_command", required=True, metavar="ACTION")
    b = sub.add_parser(
        "build",
        help="patch, configure and build a kernel tree out of tree",
        description="Apply patch series, merge config fragments onto a base config, verify "
        "every requested option survived, build bzImage (and modules), print its path last.",
    )
    b.add_argument("--src", type=Path, required=True, metavar="DIR", help="Linux source tree")
    b.add_argument(
        "--base",
        default="defconfig",
        metavar="BASE",
        help=f"base config: {' or '.join(BASES)} (default defconfig), or a config file",
    )
    b.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        metavar="FRAG",
        help="Kconfig fragment merged onto the base, in order (repeatable)",
    )
    b.add_argument(
        "--patches",
        type=Path,
        action="append",
        default=[],
        metavar="MBOX_OR_DIR",
        help="patch series (mbox, or a directory of patches) applied in order (repeatable); "
        "git am for git trees, patch -p1 otherwise",
    )
    b.add_argument("--out", type=Path, metavar="DIR", help="build directory (default build/<src>)")
    b.add_argument(
        "-j", "--jobs", type=int, default=0, metavar="N", help="parallel jobs (default: CPUs)"
    )
    b.add_argument(
        "--allow-dropped",
        action="store_true",
        help="build even when requested options did not survive (they are listed)",
    )
    b.set_defaults(func=cmd_kernel_build)
    i = sub.add_parser(
        "info",
        help="release, build string, config source and uffd-relevant options of a kernel",
    )
    i.add_argument(
        "kernel", nargs="?", metavar="KERNEL", help="bzImage path or release (default: packaged)"
    )
    i.set_defaults(func=cmd_kernel_info)
