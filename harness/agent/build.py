"""Compile the static guest agent, cached by content.

The sources live in src/: src/core/ (uffd, memory types, handler, results, JSON, the
workload table and the commands) and src/workloads/ (one file per workload). The cache
key covers every source file (path under src/ and bytes), the compiler's identity and
the flags, so an unchanged tree is a cache hit that costs one `cc --version`, and any
change to any of them yields a new binary. Builds go to a temporary name beside the
final one and are renamed into place, so concurrent builders never see half a file.
"""

import hashlib
import json
import os
import subprocess
from pathlib import Path

from harness import HarnessError
from harness.host.cache import cache_root, seal, sound_entry, staged_dir

SRC_DIR = Path(__file__).resolve().parent / "src"
BINARY_NAME = "uffd-agent"
CFLAGS = ("-static", "-O2", "-pthread", "-Wall", "-Werror")
INSTALL_HINT = "install a C compiler and the static C library: apt-get install gcc libc6-dev"


class AgentBuildError(HarnessError):
    """The agent could not be compiled; the message carries the compiler's own words."""


def agent_sources(src_dir: Path = SRC_DIR) -> list[Path]:
    """Every C source and header of the agent, relative to src_dir, in a stable order."""
    return sorted(
        p.relative_to(src_dir)
        for p in src_dir.rglob("*")
        if p.suffix in (".c", ".h") and p.is_file()
    )


def compiler_inputs(src_dir: Path = SRC_DIR) -> list[str]:
    """The include directory and every .c file: what the compiler is given beside its flags.

    Workloads include the core's headers by name, as the core's own files do. -iquote, not
    -I: core/features.h must not shadow the C library's <features.h>.
    """
    c_files = (str(src_dir / p) for p in agent_sources(src_dir) if p.suffix == ".c")
    return ["-iquote", str(src_dir / "core"), *c_files]


def compiler() -> str:
    return os.environ.get("CC") or "cc"


def compiler_identity(cc: str) -> str:
    """`cc --version`: it names the compiler, its version and its distribution build."""
    try:
        proc = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise AgentBuildError(
            f"cannot build the guest agent: no C compiler {cc!r} on PATH; {INSTALL_HINT}"
        ) from None
    if proc.returncode != 0:
        raise AgentBuildError(
            f"cannot build the guest agent: `{cc} --version` exited {proc.returncode}:\n"
            f"{proc.stderr.strip()}\n{INSTALL_HINT}"
        )
    return proc.stdout


def cache_key(src_dir: Path, identity: str, flags: tuple[str, ...] = CFLAGS) -> str:
    h = hashlib.sha256()
    for part in (identity, "\0".join(flags)):
        h.update(part.encode())
        h.update(b"\0")
    for rel in agent_sources(src_dir):
        data = (src_dir / rel).read_bytes()
        h.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/uffd-harness/agent (default ~/.cache/uffd-harness/agent)."""
    return cache_root() / "agent"


def build_agent(cache_dir: Path | None = None) -> Path:
    """The path of a static `uffd-agent` built from the current sources, building if needed."""
    cc = compiler()
    key = cache_key(SRC_DIR, compiler_identity(cc))
    entry = (cache_dir if cache_dir is not None else default_cache_dir()) / key
    target = entry / BINARY_NAME
    if sound_entry(entry, "agent"):
        return target
    with staged_dir(entry) as tmp:
        cmd = [cc, *CFLAGS, "-o", str(tmp / BINARY_NAME), *compiler_inputs()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()
            raise AgentBuildError(
                f"building the guest agent failed: `{' '.join(cmd)}` exited {proc.returncode}:\n"
                f"{output}\n{INSTALL_HINT} (a missing libc.a shows as `cannot find -lc`)"
            )
        (tmp / BINARY_NAME).chmod(0o755)
        seal(tmp)
    return target


def agent_cases(binary: Path | None = None) -> list[tuple[str, str]]:
    """(workload, memory type) of every case `uffd-agent list` names, in its order."""
    out = subprocess.run(
        [str(binary or build_agent()), "list"], capture_output=True, text=True, check=True
    ).stdout
    return [(w["name"], mem) for w in json.loads(out) for mem in w["mem"]]
