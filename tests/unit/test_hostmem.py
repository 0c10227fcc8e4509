from pathlib import Path

import pytest

from harness import UsageError
from harness.host.hostmem import Pool, host_backing, hugetlbfs_mounts, read_pools

MOUNTS = """\
sysfs /sys sysfs rw,nosuid 0 0
hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0
none /mnt/huge1g hugetlbfs rw,relatime,pagesize=1024M 0 0
"""


def test_mounts():
    assert hugetlbfs_mounts(MOUNTS) == {2048: Path("/dev/hugepages"), 1048576: Path("/mnt/huge1g")}
    assert hugetlbfs_mounts("none /x hugetlbfs rw 0 0\n") == {2048: Path("/x")}


def test_read_pools(tmp_path):
    d = tmp_path / "hugepages-2048kB"
    d.mkdir()
    (d / "nr_hugepages").write_text("10\n")
    (d / "free_hugepages").write_text("7\n")
    assert read_pools(tmp_path) == [Pool(2048, 10, 7)]


def test_backing_chosen_when_pool_suffices():
    pools = [Pool(2048, 600, 600)]
    assert host_backing(1024, pools, hugetlbfs_mounts(MOUNTS)) == (Path("/dev/hugepages"), 2048)


def test_backing_errors_say_what_to_do():
    with pytest.raises(UsageError, match="has 10 free pages, guest RAM needs 512"):
        host_backing(1024, [Pool(2048, 10, 10)], hugetlbfs_mounts(MOUNTS))
    with pytest.raises(UsageError, match="no hugetlbfs mounted"):
        host_backing(1024, [Pool(2048, 600, 600)], {})
    with pytest.raises(UsageError, match="nr_hugepages"):
        host_backing(1024, [], {})
