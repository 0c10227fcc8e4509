"""Kernels from source: `uffd-harness kernel build` and `uffd-harness kernel info`.

This module runs the build (configure a tree out of tree, make with progress and a full
log, modules_install), finds what a build installed, and holds the argparse glue that
cli.py registers with add_kernel_parser(). Beside it: kconfig.py (fragments, .config
text, why an option was dropped), patches.py (reading and applying patch series) and
kernel_info.py (finding a kernel's config, and what it means for the suite).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from harness import HarnessError, UsageError
from harness.events import Progress
from harness.kernel.info import MODULES_INSTALL
from harness.kernel.kconfig import (
    Option,
    apply_options,
    merge_fragments,
    parse_config,
    parse_fragment,
    verify,
)
from harness.kernel.patches import apply_series

BASES = ("defconfig", "tinyconfig")
#: The modules_install tree inside a build's --out directory.
BZIMAGE = Path("arch/x86/boot/bzImage")
BUILD_LOG = "build.log"

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
    #: Extra `make` variables for the build step (e.g. kbuild's GCOV_PROFILE_<obj>=y).
    make_vars: dict[str, str] = field(default_factory=dict)


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


def read_fragments(paths: list[Path]) -> tuple[dict[str, Option], list[str]]:
    """The fragments' options merged in order, and a note for each value overridden."""
    for f in paths:
        if not f.is_file():
            raise UsageError(f"--config {f}: no such file")
    return merge_fragments(parse_fragment(f.read_text(), str(f)) for f in paths)


def configure(
    req: BuildRequest,
    fragments: tuple[dict[str, Option], list[str]],
    make: Make,
    progress: Progress,
) -> dict[str, str]:
    """Base config + fragments (as read_fragments gives them) + olddefconfig, verified;
    returns the final config."""
    requested, overrides = fragments
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
    fragments = read_fragments(req.fragments)  # every fragment error before the tree is touched
    out.mkdir(parents=True, exist_ok=True)
    log = out / BUILD_LOG
    log.write_text(f"uffd-harness kernel build: src={src} out={out} base={req.base}\n")
    make = Make(src, out, req.jobs or os.cpu_count() or 1, log, progress)
    progress("start", f"log {log}; compiler {make.compiler or 'gcc'}; -j{make.jobs}")
    if req.patches:
        apply_series(src, req.patches, progress)
    final = configure(dataclasses.replace(req, src=src, out=out), fragments, make, progress)
    _check_libelf(final)
    modular = final.get("MODULES") == "y"
    make("build", "bzImage", *(["modules"] if modular else []), **req.make_vars)
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
