"""A kernel tree's userfaultfd selftests: which layout, which binaries, and how the tree's
own run_vmtests.sh runs them per memory type. Reads the tree; runs nothing.

- `tools/testing/selftests/vm/` (6.2 and older; `mm/` in 6.3): one `userfaultfd` binary,
  run as `./userfaultfd anon 20 16`, `hugetlb $half 32`, `hugetlb_shared $half 32 $mnt/uffd-test`,
  `shmem 20 16` (and each again with the `:dev` mod).
- `tools/testing/selftests/mm/` (6.4 and newer): `uffd-unit-tests` (no arguments; every
  case on every memory type it applies to), `uffd-stress anon 20 16`, `hugetlb $half 32`,
  `hugetlb-private $half 32`, `shmem 20 16`, `shmem-private 20 16`, and `uffd-wp-mremap`.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness import UsageError

SELFTESTS = Path("tools/testing/selftests")
#: The hugetlbfs mount the guest's init makes for 2 MiB pages (run_vmtests.sh's `$mnt`).
HUGETLBFS = "/mnt/huge-2048kB"
#: A binary's own memory type names -> the agent's (for the side-by-side table).
AGENT_MEM = {
    "anon": "anon",
    "shmem": "shmem",
    "shmem-private": "shmem-private",
    "hugetlb": "hugetlb",  # mm/: a shared hugetlb memfd
    "hugetlb-private": "hugetlb-private",
    "hugetlb_shared": "hugetlb",  # vm/: a shared hugetlbfs file
}
#: vm/'s `hugetlb` is MAP_PRIVATE|MAP_HUGETLB, mm/'s is shared: the agent's names differ.
LEGACY_AGENT_MEM = {**AGENT_MEM, "hugetlb": "hugetlb-private"}


@dataclass(frozen=True)
class Binary:
    name: str  # e.g. "userfaultfd", "uffd-unit-tests"
    sources: tuple[str, ...]  # .c files, relative to the layout's directory
    parser: str  # key of harness.kselftest.parse.PARSERS


@dataclass(frozen=True)
class Invocation:
    """One run of one binary, as run_vmtests.sh makes it."""

    binary: str
    mem: str  # the binary's own memory-type argument ("" for uffd-unit-tests, uffd-wp-mremap)
    args: tuple[str, ...]  # after the binary, with $half and $mnt left as {half} and {mnt}
    parser: str
    #: Cases it prints when it runs to its end (the rest are reported as not reached).
    expected: tuple[str, ...] = ()
    hugetlb: bool = False  # needs free hugepages: 2 x {half} MiB

    def argv(self, half_mb: int, mnt: str = HUGETLBFS) -> list[str]:
        return [f"./{self.binary}"] + [
            a.replace("{half}", str(half_mb)).replace("{mnt}", mnt) for a in self.args
        ]

    @property
    def label(self) -> str:
        """As run_vmtests.sh writes it: `userfaultfd hugetlb $half 32`."""
        args = " ".join(self.args).replace("{half}", "$half").replace("{mnt}", HUGETLBFS)
        return f"{self.binary} {args}".strip()


@dataclass(frozen=True)
class Layout:
    src: Path
    kind: str  # "vm" (6.1 and older) or "mm"
    directory: Path  # tools/testing/selftests/vm or mm
    binaries: tuple[Binary, ...]
    invocations: tuple[Invocation, ...]
    version: str  # from the top Makefile, e.g. "6.1.192"
    script_text: str  # run_vmtests.sh, for the key and the half-size formula

    def agent_mem(self, mem: str) -> str | None:
        table = LEGACY_AGENT_MEM if self.kind == "vm" else AGENT_MEM
        return table.get(mem)


def tree_version(src: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile; UsageError if it is no kernel tree."""
    makefile = src / "Makefile"
    try:
        text = makefile.read_text(errors="replace")[:4000]
    except OSError:
        text = ""
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d+)", text, re.M))
    if not (src / "Kbuild").is_file() or "VERSION" not in fields:
        raise UsageError(
            f"--src {src}: not a Linux kernel tree (expected a top Makefile with VERSION = "
            "and a Kbuild file); give the directory of an unpacked kernel source"
        )
    return ".".join(fields.get(k, "0") for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL"))


#: `run_test ./userfaultfd anon${mod} 20 16` and `run_test ${uffd_stress_bin} hugetlb ...`
_RUN_LINE = re.compile(
    r"run_test\s+(?P<bin>\./userfaultfd|\$\{uffd_stress_bin\}|\./uffd-[\w-]+)(?P<args>[^\n]*)"
)


def script_invocations(text: str) -> list[tuple[str, list[str]]]:
    """(binary, arguments) of each userfaultfd run in a run_vmtests.sh, in order, once each
    (the `:dev` mods of vm/ are left out: the same cases through /dev/userfaultfd)."""
    found = []
    for m in _RUN_LINE.finditer(text):
        binary = m.group("bin").removeprefix("./")
        if binary == "${uffd_stress_bin}":
            binary = "uffd-stress"
        raw = m.group("args").split("#")[0].replace("${mod}", "")
        raw = raw.replace("$half_ufd_size_MB", "{half}").replace("$mnt", "{mnt}")
        item = (binary, shlex.split(raw))
        if item not in found:
            found.append(item)
    return found


LEGACY_CASES = {
    "anon": ("stress", "pagemap-4k", "pagemap-thp", "zeropage", "sigbus", "events"),
    "hugetlb": ("stress", "zeropage", "sigbus", "events"),
    "hugetlb_shared": ("stress", "zeropage", "sigbus", "events", "minor"),
    "shmem": ("stress", "zeropage", "sigbus", "events", "minor"),
}

_MM_BINARIES = (
    Binary("uffd-unit-tests", ("uffd-unit-tests.c", "uffd-common.c", "vm_util.c"), "unit"),
    Binary("uffd-stress", ("uffd-stress.c", "uffd-common.c", "vm_util.c"), "legacy"),
    Binary("uffd-wp-mremap", ("uffd-wp-mremap.c", "uffd-common.c", "vm_util.c"), "ktap"),
)


def _mm_binaries(directory: Path) -> tuple[Binary, ...]:
    extra = tuple(f for f in ("thp_settings.c",) if (directory / f).is_file())
    return tuple(
        Binary(b.name, b.sources + extra, b.parser)
        for b in _MM_BINARIES
        if (directory / b.sources[0]).is_file()
    )


def _invocation(kind: str, binary: Binary, args: list[str]) -> Invocation:
    mem = args[0] if binary.name in ("userfaultfd", "uffd-stress") and args else ""
    expected: tuple[str, ...] = ()
    if kind == "vm":
        expected = LEGACY_CASES.get(mem, ())
    elif binary.name == "uffd-stress":
        expected = ("stress",)
    return Invocation(
        binary.name, mem, tuple(args), binary.parser, expected, hugetlb="hugetlb" in mem
    )


def find_layout(src: Path) -> Layout:
    """The tree's uffd selftests; UsageError naming what is missing."""
    src = src.resolve()
    if not src.is_dir():
        raise UsageError(f"--src {src}: no such directory")
    version = tree_version(src)
    vm, mm = src / SELFTESTS / "vm", src / SELFTESTS / "mm"
    if (mm / "uffd-unit-tests.c").is_file() or (mm / "uffd-stress.c").is_file():
        kind, directory = "mm", mm
        binaries = _mm_binaries(mm)
    elif (vm / "userfaultfd.c").is_file() or (mm / "userfaultfd.c").is_file():
        # The one-binary selftest: vm/ up to 6.2, mm/ in 6.3 (the directory was renamed
        # before the binary was split).
        kind, directory = "vm", vm if (vm / "userfaultfd.c").is_file() else mm
        sources = tuple(s for s in ("userfaultfd.c", "vm_util.c") if (directory / s).is_file())
        binaries = (Binary("userfaultfd", sources, "legacy"),)
    else:
        raise UsageError(
            f"--src {src} (Linux {version}) has no userfaultfd selftests: neither "
            f"{SELFTESTS}/mm/uffd-unit-tests.c nor {SELFTESTS}/vm/userfaultfd.c"
        )
    script = directory / "run_vmtests.sh"
    text = script.read_text(errors="replace") if script.is_file() else ""
    by_name = {b.name: b for b in binaries}
    invocations = [
        _invocation(kind, by_name[name], args)
        for name, args in script_invocations(text)
        if name in by_name
    ]
    if not invocations:
        # No run_vmtests.sh lines we understand: the binaries as the tree's Makefile names
        # them, anon only (stated in the results as the tree's script was not used).
        invocations = [
            _invocation(kind, b, ["anon", "20", "16"] if b.parser == "legacy" else [])
            for b in binaries
        ]
    return Layout(src, kind, directory, binaries, tuple(invocations), version, text)


def half_size_mb(script_text: str, nr_cpus: int, hpage_kb: int, free_pages: int) -> int:
    """run_vmtests.sh's `$half_ufd_size_MB`: the MiB each of uffd-stress's two hugetlb areas
    gets. Older scripts round nr_cpus huge pages up to 128 MiB; newer ones take half of
    the free pool less one page per extra CPU (at most 31)."""
    hpage_mb = max(hpage_kb // 1024, 1)
    if "freepgs - adjustment" in script_text:
        adjustment = min(31, nr_cpus - 1)
        return ((free_pages - adjustment) * hpage_kb) // 1024 // 2
    return ((nr_cpus * hpage_mb + 127) // 128) * 128
