import pytest

from harness import HarnessError
from harness.kernel.modules import ModuleTree, load_order, parse_builtin, parse_modules_dep


@pytest.fixture
def table(data_dir):
    return parse_modules_dep((data_dir / "modules.dep.6.1-virtio").read_text())


def test_dependencies_come_first(table):
    order = load_order(["virtio_pci", "virtio_net"], table, set())
    names = [p.rsplit("/", 1)[1] for p in order]
    assert names.index("virtio_ring.ko") < names.index("virtio.ko") < names.index("virtio_pci.ko")
    assert (
        names.index("failover.ko") < names.index("net_failover.ko") < names.index("virtio_net.ko")
    )
    assert len(names) == len(set(names))  # shared deps loaded once


def test_hyphenated_module_found_by_underscore_name(table):
    assert load_order(["virtio_rng"], table, set())[-1].endswith("virtio-rng.ko")


def test_builtins_need_nothing(table):
    builtin = parse_builtin(
        "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"
    )
    order = load_order(["virtio_pci"], table, builtin)
    assert not any(p.endswith(("/virtio.ko", "virtio_ring.ko")) for p in order)


def test_missing_required_driver_is_named(tmp_path, data_dir):
    (tmp_path / "modules.dep").write_text("kernel/drivers/virtio/virtio_ring.ko:\n")
    with pytest.raises(HarnessError, match="'virtio_net'"):
        ModuleTree(tmp_path).resolve(["virtio_net"], [])


def test_missing_optional_driver_reported(tmp_path, data_dir):
    (tmp_path / "modules.dep").write_text((data_dir / "modules.dep.6.1-virtio").read_text())
    paths, missing = ModuleTree(tmp_path).resolve(["virtio_net"], ["zram", "nosuch"])
    assert missing == ["nosuch"]
    assert paths[-1].endswith("zram.ko") and any(p.endswith("zsmalloc.ko") for p in paths)


def test_cycle_detected():
    table = {"a": ("a.ko", ["b"]), "b": ("b.ko", ["a"])}
    with pytest.raises(HarnessError, match="cycle"):
        load_order(["a"], table, set())
