"""Build a tree's userfaultfd selftests statically on the host, cached by source hash.

The tree's exported uAPI headers come from `make O=<scratch> headers` (what
`headers_install` copies, without rsync, and without writing into the tree); the
selftests are then compiled as their Makefile does (`-Wall -I <tree> -isystem
<headers>`), plus `-static`, so the guest needs no C library. The cache key covers the
compiler's identity, the flags, and every file the build reads: the selftest directory's
sources, kselftest's headers, the uAPI header trees and the syscall table; a tree that
changed in any of them builds anew. The entry is sealed (harness.host.cache) so a damaged
one is rebuilt, and the build log is kept beside the entries whatever happens.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import HarnessError
from harness.agent.build import compiler, compiler_identity
from harness.host.cache import cache_root, seal, sound_entry, staged_dir
from harness.kselftest.tree import SELFTESTS, Layout

CFLAGS = ("-static", "-O2", "-Wall", "-pthread")
LDLIBS = ("-lrt", "-lpthread", "-lm")
#: What the build reads outside the selftest directory (trees are read recursively).
_INPUT_TREES = ("include/uapi", "arch/x86/include/uapi", "tools/include/uapi")
_INPUT_FILES = (
    "Makefile",
    "arch/x86/entry/syscalls/syscall_64.tbl",
    "scripts/headers_install.sh",
    "mm/gup_test.h",
)


class SelftestBuildError(HarnessError):
    """A selftest did not compile; the message has the compiler's first error and the log."""


def default_cache_dir() -> Path:
    return cache_root() / "kselftest"


def build_inputs(layout: Layout) -> list[Path]:
    """Every file whose bytes go into the cache key, relative to the tree, sorted."""
    src = layout.src
    files = {
        p
        for p in layout.directory.iterdir()
        if p.is_file() and (p.suffix in (".c", ".h") or p.name == "Makefile")
    }
    files |= set((src / SELFTESTS).glob("*.h")) | set((src / SELFTESTS).glob("lib.mk"))
    for tree in _INPUT_TREES:
        if (src / tree).is_dir():
            files |= {p for p in (src / tree).rglob("*") if p.is_file()}
    files |= {src / f for f in _INPUT_FILES if (src / f).is_file()}
    return sorted(p.relative_to(src) for p in files)


def cache_key(layout: Layout, identity: str) -> str:
    h = hashlib.sha256()
    for part in (identity, "\0".join(CFLAGS + LDLIBS), layout.kind):
        h.update(part.encode() + b"\0")
    for b in layout.binaries:
        h.update(f"{b.name}\0{' '.join(b.sources)}\0".encode())
    for rel in build_inputs(layout):
        data = (layout.src / rel).read_bytes()
        h.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def compile_argv(
    cc: str, layout: Layout, binary_sources: tuple[str, ...], headers: Path, out: Path
) -> list[str]:
    """The compiler command for one selftest binary, as the tree's Makefile builds it."""
    src = layout.src
    argv = [cc, *CFLAGS, "-I", str(src), "-isystem", str(headers)]
    if (src / "tools/include/uapi").is_dir():
        argv += ["-isystem", str(src / "tools/include/uapi")]
    lib_mk = src / SELFTESTS / "lib.mk"
    if lib_mk.is_file() and "-D_GNU_SOURCE" in lib_mk.read_text(errors="replace"):
        argv.append("-D_GNU_SOURCE=")
    argv += ["-o", str(out), *(str(layout.directory / s) for s in binary_sources), *LDLIBS]
    return argv


def first_error(output: str) -> str:
    """The compiler's (or make's) first error line, else its last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        if " error: " in ln or ln.startswith(("error:", "make: ***", "make[1]: ***")):
            return ln
    return lines[-1] if lines else "(no output)"


def _run_logged(cmd: list[str], log, timeout: float = 900) -> subprocess.CompletedProcess:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    log.write(proc.stdout + proc.stderr + f"(exit {proc.returncode})\n")
    log.flush()
    return proc


def _headers(layout: Layout, scratch: Path, log) -> Path:
    """The tree's exported uAPI headers: `make O=scratch headers`, or, in a tree already
    configured in place (where O= is refused), its own usr/include if present."""
    proc = _run_logged(
        [
            "make",
            "-s",
            f"-j{os.cpu_count() or 1}",
            "-C",
            str(layout.src),
            f"O={scratch / 'obj'}",
            "headers",
        ],
        log,
    )
    if proc.returncode == 0:
        return scratch / "obj" / "usr" / "include"
    own = layout.src / "usr" / "include"
    if (own / "linux" / "userfaultfd.h").is_file():
        log.write(f"using the tree's own {own}\n")
        return own
    raise SelftestBuildError(
        f"cannot export {layout.src}'s uAPI headers: `make O=... headers` exited "
        f"{proc.returncode}: {first_error(proc.stdout + proc.stderr)} (log: {log.name})"
    )


def build_selftests(layout: Layout, cache_dir: Path | None = None) -> tuple[Path, bool]:
    """(directory holding one static binary per layout binary, whether it was cached)."""
    cc = compiler()
    key = cache_key(layout, compiler_identity(cc))
    root = cache_dir if cache_dir is not None else default_cache_dir()
    entry = root / key
    if sound_entry(entry, "selftests"):
        return entry, True
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{key[:16]}.log"
    with (
        log_path.open("w") as log,
        staged_dir(entry) as tmp,
        tempfile.TemporaryDirectory(prefix="headers-", dir=root) as scratch,
    ):
        headers = _headers(layout, Path(scratch), log)
        for b in layout.binaries:
            cmd = compile_argv(cc, layout, b.sources, headers, tmp / b.name)
            proc = _run_logged(cmd, log)
            if proc.returncode != 0:
                raise SelftestBuildError(
                    f"building the {b.name} selftest of {layout.src} failed: "
                    f"{first_error(proc.stdout + proc.stderr)} (full log: {log_path})"
                )
        shutil.copy(log_path, tmp / "build.log")
        seal(tmp)
    return entry, False
