"""What a coverage kernel profiles: the userfaultfd files and the MM files that carry
_PAGE_UFFD_WP, as kbuild's per-object GCOV_PROFILE_<obj>.o=y make variables.

kbuild keys the variable on the object's base name only, and a variable given on make's
command line reaches every directory: a plain `GCOV_PROFILE_memory.o=y` would profile
arch/x86/boot/memory.o too, which the real-mode setup code cannot link. So each value
tests the directory being built (kbuild's `$(obj)`, expanded per object).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath

#: Source files whose every line counts (they exist for userfaultfd).
WHOLE_FILES = ("fs/userfaultfd.c", "mm/userfaultfd.c")
#: Source files where only the userfaultfd-related lines count (harness.coverage.related).
RELATED_FILES = (
    "mm/memory.c",
    "mm/huge_memory.c",
    "mm/hugetlb.c",
    "mm/mprotect.c",
    "mm/shmem.c",
    "mm/rmap.c",
    "mm/migrate.c",
    "mm/khugepaged.c",
    "mm/swapfile.c",
    "mm/madvise.c",
    "mm/mremap.c",
    "mm/mmap.c",
    "fs/proc/task_mmu.c",
)
#: Headers whose inline functions are compiled into the files above; gcov reports their
#: lines under the header.
RELATED_HEADERS = ("include/linux/userfaultfd_k.h",)

#: The config fragment that turns on gcov (kernel-configs/coverage.config in the checkout).
FRAGMENT = "coverage.config"


def profiled_files() -> tuple[str, ...]:
    return WHOLE_FILES + RELATED_FILES


def make_vars() -> dict[str, str]:
    """kbuild variables that profile exactly the objects of profiled_files()."""
    dirs: dict[str, list[str]] = defaultdict(list)
    for f in profiled_files():
        p = PurePosixPath(f)
        dirs[p.with_suffix(".o").name].append(str(p.parent))
    return {
        f"GCOV_PROFILE_{obj}": f"$(if $(filter {' '.join(sorted(d))},$(obj)),y)"
        for obj, d in dirs.items()
    }
