"""Where uffd-harness keeps what it builds: $XDG_CACHE_HOME/uffd-harness."""

import os
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base) / "uffd-harness"
    root.mkdir(parents=True, exist_ok=True)
    return root
