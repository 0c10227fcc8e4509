"""From the guest's gcov snapshots to gcovr's line and branch coverage.

A snapshot (harness.guest.gcov) is a tar of .gcda files under the build directory's
absolute path. Snapshots are merged with gcc's own `gcov-tool merge` (counters add up),
laid beside the build's .gcno notes, and read by gcovr, which runs gcc's `gcov` on them.

gcovr (PyPI) rather than lcov (Debian): it installs into the harness's own venv at a
pinned version, reads gcc 12's JSON intermediate format directly, writes a JSON file with
every line's count and function that the report code reads, merges such files, and
writes a self-contained HTML report; lcov 1.16 would need Perl and a second parser of
its tracefile format.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from harness import HarnessError


def _tool(name: str) -> str:
    """gcc's gcov or gcov-tool of the compiler's own version (its .gcda format)."""
    try:
        major = subprocess.run(
            ["gcc", "-dumpversion"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        major = ""
    versioned = [f"{name}-{major.split('.')[0]}"] if major else []
    for candidate in [*versioned, name]:
        if shutil.which(candidate):
            return candidate
    raise HarnessError(f"{name} not found: it comes with gcc (apt-get install gcc)")


def unpack(tar: Path, build: Path, dest: Path) -> list[Path]:
    """Extract a snapshot's .gcda files into dest, at their paths inside the build
    directory (the guest names them by the build's absolute path)."""
    prefix = build.resolve().as_posix().lstrip("/") + "/"
    found = []
    with tarfile.open(fileobj=io.BytesIO(tar.read_bytes())) as t:
        for m in t.getmembers():
            name = m.name.removeprefix("./")
            if not (m.isfile() and name.endswith(".gcda")):
                continue
            if not name.startswith(prefix):
                raise HarnessError(
                    f"{tar}: {name} is not under the build directory {build}: the guest ran "
                    "a kernel built elsewhere; give the --kernel-build it was built in"
                )
            out = dest / name[len(prefix) :]
            out.parent.mkdir(parents=True, exist_ok=True)
            data = t.extractfile(m)
            assert data
            out.write_bytes(data.read())
            found.append(out)
    return found


def merge(snapshots: list[Path], build: Path, dest: Path, scratch: Path) -> None:
    """The sum of the snapshots' counters as one .gcda tree in dest."""
    shutil.rmtree(dest, ignore_errors=True)
    if not snapshots:
        dest.mkdir(parents=True)
        return
    unpack(snapshots[0], build, dest)
    tool = _tool("gcov-tool")
    for tar in snapshots[1:]:
        one, out = scratch / "one", scratch / "out"
        shutil.rmtree(one, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        unpack(tar, build, one)
        # gcov-tool merges the files both trees hold; a file only one holds is copied.
        proc = subprocess.run(
            [tool, "merge", "-o", str(out), str(one), str(dest)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise HarnessError(f"gcov-tool merge of {tar} failed: {proc.stderr.strip()[-500:]}")
        for f in one.rglob("*.gcda"):
            rel = f.relative_to(one)
            if not (out / rel).exists():
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out / rel)
        shutil.rmtree(dest)
        out.rename(dest)


def link_notes(tree: Path, build: Path) -> None:
    """Put each .gcda's .gcno (written by the compiler into the build) beside it."""
    for gcda in tree.rglob("*.gcda"):
        note = build / gcda.relative_to(tree).with_suffix(".gcno")
        if not note.exists():
            raise HarnessError(f"{note} missing: the build directory is not the kernel's")
        link = gcda.with_suffix(".gcno")
        link.unlink(missing_ok=True)
        link.symlink_to(note)


def gcovr(
    tree: Path,
    src: Path,
    files: tuple[str, ...],
    json_out: Path,
    html_out: Path | None = None,
    jobs: int = 2,
) -> dict:
    """Run gcovr over a .gcda tree (notes linked); its JSON, restricted to `files`."""
    argv = [
        sys.executable,
        "-m",
        "gcovr",
        "--root",
        str(src),
        "--gcov-executable",
        _tool("gcov"),
        "-j",
        str(jobs),
        "--json",
        str(json_out),
    ]
    for f in files:
        argv += ["--filter", str(src / f).replace(".", r"\.") + "$"]
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--html-details", str(html_out), "--html-title", "uffd-harness coverage"]
    argv.append(str(tree))
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HarnessError(
            f"gcovr failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}\n"
            f"command: {' '.join(argv)}"
        )
    return json.loads(json_out.read_text())
