"""Patch series for `kernel build --patches`: mbox files and directories of patches.

The pure part reads a series (splits an mbox, skips cover letters and replies, puts
numbered patches in order); the part after it applies the series to a tree with git am
or patch -p1, and puts the tree back as it was when a patch does not apply.
"""

from __future__ import annotations

import email.header
import email.parser
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import HarnessError, UsageError
from harness.events import Progress

# =========================================================================================
# Reading a series: mbox files and directories of patches
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
