"""Where uffd-harness keeps what it builds ($XDG_CACHE_HOME/uffd-harness), and how a file or
a cache entry appears there: whole or not at all."""

import contextlib
import os
import secrets
import shutil
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
