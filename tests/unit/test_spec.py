import pytest

from harness import UsageError
from harness.settings.merge import load_guest_config, merge_settings
from harness.settings.schema import DEFAULTS
from harness.settings.spec import GuestSpec
from harness.settings.values import parse_hugepages, parse_seconds, parse_size_mb


@pytest.mark.parametrize(
    "text, mb", [("3G", 3072), ("512M", 512), ("512", 512), ("1GiB", 1024), ("2048K", 2)]
)
def test_sizes(text, mb):
    assert parse_size_mb(text) == mb


@pytest.mark.parametrize("text", ["", "lots", "3X", "-1G", "1K", "\u0663G"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size_mb(text)


def test_hugepages():
    assert parse_hugepages("2M:64,1G:1") == {2048: 64, 1024 * 1024: 1}
    assert parse_hugepages("") == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("2M", "SIZE:COUNT"),
        ("4M:3", "2M and 1G"),
        ("2M:1,2M:2", "twice"),
        ("2M:x", "SIZE:COUNT"),
        ("2M:\u00b2", "SIZE:COUNT"),  # str.isdigit() takes a superscript two; int() does not
        ("lots:1", "2M and 1G"),
    ],
)
def test_bad_hugepages(text, message):
    with pytest.raises(ValueError, match=message):
        parse_hugepages(text)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "-1", "", "soon", "1e400"])
def test_bad_seconds(text):
    with pytest.raises(ValueError, match="finite number of seconds > 0"):
        parse_seconds(text)
    assert parse_seconds("0.5") == 0.5


def test_pools_must_fit_in_memory(tmp_path):
    spec = GuestSpec(kernel=tmp_path, mem_mb=1024, hugepages={2048: 512}, numa_nodes=1)
    with pytest.raises(UsageError, match="needs 1024 MiB but --mem is 1024"):
        spec.validate()
    GuestSpec(kernel=tmp_path, mem_mb=1280, hugepages={2048: 512}, numa_nodes=1).validate()


def test_gigantic_pages_need_room_above_low_ram(tmp_path):
    spec = GuestSpec(kernel=tmp_path, mem_mb=1536, hugepages={1024 * 1024: 1}, numa_nodes=1)
    with pytest.raises(UsageError, match="needs --mem 2176M"):
        spec.validate()
    GuestSpec(kernel=tmp_path, mem_mb=3072, hugepages={2048: 128, 1024 * 1024: 1}).validate()


def test_numa_nodes_after_the_first_take_their_memory_from_node_0(tmp_path):
    spec = GuestSpec(kernel=tmp_path, mem_mb=2304, hugepages={1024 * 1024: 1}, numa_nodes=2)
    assert spec.node_sizes_mb() == [1792, 512]
    with pytest.raises(UsageError, match="needs --mem 2688M .* 512 MiB for the other NUMA nodes"):
        spec.validate()
    spec = GuestSpec(kernel=tmp_path, mem_mb=2048, hugepages={2048: 8}, numa_nodes=4)
    with pytest.raises(UsageError, match="leaves node 0 512 MiB of --mem 2048M: use --mem 2560M"):
        spec.validate()
    GuestSpec(kernel=tmp_path, mem_mb=2560, hugepages={2048: 8}, numa_nodes=4).validate()


def test_cpu_default_follows_accel(tmp_path):
    assert GuestSpec(kernel=tmp_path, accel="tcg").cpu_model == "max"
    assert GuestSpec(kernel=tmp_path, accel="kvm").cpu_model == "host"
    assert (
        GuestSpec(kernel=tmp_path, accel="kvm", cpu="Skylake-Server").cpu_model == "Skylake-Server"
    )


def test_guest_spec_defaults_are_the_settings_defaults(tmp_path):
    spec = GuestSpec.from_settings(DEFAULTS, tmp_path, "tcg")
    assert spec == GuestSpec(kernel=tmp_path)
    assert (spec.smp, spec.mem_mb, spec.hugepages) == (2, 3072, {2048: 128, 1024 * 1024: 1})


def test_guest_config_file(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text("mem: 4G\nsmp: 4\nhugepages: 2M:16\nguest_timeout: 30\n")
    loaded = load_guest_config(cfg)
    assert loaded == {"mem": "4G", "smp": 4, "hugepages": "2M:16", "guest_timeout": 30.0}
    merged = merge_settings({"smp": 1, "mem": None}, loaded)
    assert merged["smp"] == 1  # the flag wins
    assert merged["mem"] == "4G"  # the file fills what the flags left out
    assert merged["accel"] == "auto"  # the default fills the rest


@pytest.mark.parametrize(
    "text, message",
    [
        ("mem: 3G\nsmp: [1\n", r"g\.yaml:\d+: malformed YAML"),
        ("mem: 3G\nmemory: 4G\n", r"g\.yaml:2: unknown setting 'memory'"),
        ("mem: 3G\n\nsmp: two\n", r"g\.yaml:3: smp 'two': expected a whole number"),
        ("smp: yes\n", r"g\.yaml:1: smp True: expected a single value"),
        ("- mem\n", r"g\.yaml:1: expected a mapping"),
        ("accel: kvmm\n", r"g\.yaml:1: accel 'kvmm': expected one of auto, kvm, tcg"),
        ("mem: 3G\nhugepages: '2M:\u00b2'\n", r"g\.yaml:2: hugepages '2M:.': entry"),
        ("guest_timeout: 0\n", r"g\.yaml:1: guest_timeout 0: expected a finite number"),
        ("guest_timeout: -5\n", r"g\.yaml:1: guest_timeout -5: expected"),
        ("guest_timeout: .nan\n", r"g\.yaml:1: guest_timeout nan: expected"),
        ("host_hugepages: 1\n", r"g\.yaml:1: host_hugepages 1: expected true or false"),
        ("results: /tmp\n", r"g\.yaml:1: unknown setting 'results'"),
    ],
)
def test_bad_guest_config_names_file_and_line(tmp_path, text, message):
    cfg = tmp_path / "g.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_guest_config(cfg)
