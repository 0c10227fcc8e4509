"""Host hugepage pools and hugetlbfs mounts, for --host-hugepages and `doctor`."""

from dataclasses import dataclass
from pathlib import Path

from harness import UsageError
from harness.settings.values import format_pagesize


@dataclass(frozen=True)
class Pool:
    size_kb: int
    total: int
    free: int


def read_pools(sysfs: Path = Path("/sys/kernel/mm/hugepages")) -> list[Pool]:
    pools = []
    for d in sorted(sysfs.glob("hugepages-*kB")):
        size = int(d.name.removeprefix("hugepages-").removesuffix("kB"))
        total = int((d / "nr_hugepages").read_text())
        free = int((d / "free_hugepages").read_text())
        pools.append(Pool(size, total, free))
    return pools


def hugetlbfs_mounts(mounts_text: str) -> dict[int, Path]:
    """{page size in KiB: mount point} from /proc/mounts text (default size is 2M)."""
    found: dict[int, Path] = {}
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "hugetlbfs":
            continue
        size_kb = 2048
        for opt in fields[3].split(","):
            if opt.startswith("pagesize="):
                value = opt.removeprefix("pagesize=").upper()
                num = int(value.rstrip("KMG"))
                size_kb = num * {"K": 1, "M": 1024, "G": 1024 * 1024}.get(value[-1], 1)
        found.setdefault(size_kb, Path(fields[1]))
    return found


def host_backing(mem_mb: int, pools: list[Pool], mounts: dict[int, Path]) -> tuple[Path, int]:
    """The hugetlbfs mount and page size to back `mem_mb` of guest RAM, or a UsageError
    saying how to provide it."""
    problems = []
    for pool in sorted(pools, key=lambda p: p.size_kb):
        need = -(-mem_mb * 1024 // pool.size_kb)
        if pool.size_kb not in mounts:
            problems.append(f"no hugetlbfs mounted for {format_pagesize(pool.size_kb)} pages")
        elif pool.free < need:
            problems.append(
                f"{format_pagesize(pool.size_kb)} pool has {pool.free} free pages, "
                f"guest RAM needs {need}"
            )
        else:
            return mounts[pool.size_kb], pool.size_kb
    need_2m = -(-mem_mb // 2)
    raise UsageError(
        f"--host-hugepages: cannot back {mem_mb} MiB of guest RAM: "
        f"{'; '.join(problems) or 'no host hugepage pools'}; "
        f"e.g. as root: `echo {need_2m} > /proc/sys/vm/nr_hugepages` and "
        "`mount -t hugetlbfs none /dev/hugepages`"
    )
