"""Where uffd-harness keeps what it builds ($XDG_CACHE_HOME/uffd-harness), and how a file or
a cache entry appears there: whole or not at all."""

import contextlib
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base) / "uffd-harness"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A fresh temporary path beside `target` for the block to write; renamed over `target`
    when the block ends without an exception, removed in any case.

    A reader of `target` sees the old file or the whole new one, never a part; two processes
    writing the same target both end with a whole file (the last rename wins).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # pid + random: unique across processes and threads, and never an existing file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def publish(target: Path, data: bytes | str, mode: int = 0o666, durable: bool = False) -> Path:
    """Write `data` to `target` atomically (see `staged`). `mode` applies from creation,
    less the umask, so a secret is never readable by others, not even for a moment.
    `durable`: on disk before this returns, so it survives a power cut (results)."""
    with staged(target) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
    if durable:
        fsync_dir(target.parent)
    return target


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_dir(entry: Path) -> Iterator[Path]:
    """A temporary directory beside `entry` for the block to fill; renamed to `entry` when
    the block ends without an exception, removed in any case.

    A reader that finds `entry` finds it complete. When another process published the same
    entry first, theirs is kept and ours dropped: a cache entry is a function of its key.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, entry)
        except OSError:
            if not entry.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: The file in a sealed cache entry that records the sha256 of every other file in it.
MANIFEST = "SHA256SUMS"
#: Entries this process found whole, with the size and mtime of each of their files: a
#: boot asks for the unpacked kernel twice (config check, PVH boot), and hashing a vmlinux
#: costs ~0.1 s; any write since (a changed mtime or size) makes it hashed again.
_sound: dict[Path, tuple] = {}


def _stamp(entry: Path) -> tuple:
    return tuple(
        (str(p.relative_to(entry)), p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(entry.rglob("*"))
        if p.is_file()
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seal(directory: Path) -> None:
    """Record the sha256 of every file of a staged entry, before it is published: a later
    reader can then tell a whole entry from one damaged since (a full disk, a crash in a
    copy, a stray edit)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    lines = [f"{file_sha256(p)}  {p.relative_to(directory)}\n" for p in files]
    (directory / MANIFEST).write_text("".join(lines))


def damage(entry: Path) -> str | None:
    """None when every file the entry's manifest lists is there with its recorded hash;
    otherwise what is wrong."""
    try:
        lines = (entry / MANIFEST).read_text().splitlines()
    except OSError:
        return f"no {MANIFEST} (written before hashes were recorded, or lost)"
    for line in lines:
        want, _, name = line.partition("  ")
        path = entry / name
        if not path.is_file():
            return f"{name} is missing"
        if file_sha256(path) != want:
            return f"{name} does not match its recorded sha256"
    return None


def sound_entry(entry: Path, what: str) -> bool:
    """True when a sealed entry exists and is whole. A damaged one is moved aside (and
    removed) with a note, so that the caller rebuilds it: it is never used."""
    if not entry.is_dir():
        return False
    try:
        stamp = _stamp(entry)
    except OSError:
        stamp = ()
    if stamp and _sound.get(entry) == stamp:
        return True
    problem = damage(entry)
    if problem is None:
        _sound[entry] = stamp
        return True
    print(
        f"uffd-harness: note: cached {what} {entry} is damaged ({problem}); rebuilding it",
        file=sys.stderr,
        flush=True,
    )
    aside = entry.with_name(f".{entry.name}.damaged.{os.getpid()}.{secrets.token_hex(4)}")
    with contextlib.suppress(OSError):
        os.rename(entry, aside)
        shutil.rmtree(aside, ignore_errors=True)
    return False
