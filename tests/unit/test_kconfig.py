"""Kconfig text: fragments, .config files, and why an option was dropped.

Config texts are excerpts of a real tinyconfig + minimal.config build of linux-source-6.1;
the Kconfig snippets are cut from the same tree.
"""

import re

import pytest

from harness import UsageError
from harness.kernel.kconfig import (
    KconfigIndex,
    apply_options,
    eval_expr,
    explain,
    find_dropped,
    merge_fragments,
    parse_config,
    parse_fragment,
)

# Excerpt of build/min/.config (linux-source-6.1, tinyconfig + minimal.config).
RECORDED_CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86_64 6.1.192 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
CONFIG_LOCALVERSION="-uffd-min"
# CONFIG_LOCALVERSION_AUTO is not set
CONFIG_NR_CPUS=8
CONFIG_EXPERT=y
CONFIG_SHMEM=y
# CONFIG_MODULES is not set
CONFIG_USERFAULTFD=y
CONFIG_HAVE_ARCH_USERFAULTFD_WP=y
CONFIG_HAVE_ARCH_USERFAULTFD_MINOR=y
CONFIG_PTE_MARKER=y
CONFIG_PTE_MARKER_UFFD_WP=y
CONFIG_ZSMALLOC=y
# CONFIG_ZSMALLOC_STAT is not set
CONFIG_CRYPTO_LZO=y
CONFIG_ZRAM=y
CONFIG_ZRAM_DEF_COMP_LZORLE=y
CONFIG_ZRAM_DEF_COMP="lzo-rle"
CONFIG_HZ=250
CONFIG_PHYSICAL_START=0x1000000
"""


# -- fragments and .config text ---------------------------------------------------------------


def test_parse_recorded_config():
    values = parse_config(RECORDED_CONFIG)
    assert values["USERFAULTFD"] == "y"
    assert values["MODULES"] == "n"
    assert values["ZRAM_DEF_COMP"] == '"lzo-rle"'
    assert values["NR_CPUS"] == "8"
    assert "LOCALVERSION_AUTO" in values and values["LOCALVERSION_AUTO"] == "n"
    assert not any(k.startswith("#") or k == "Automatically" for k in values)


def test_parse_fragment_values_and_optional_marker():
    text = (
        "# a comment\n"
        "CONFIG_A=y\n"
        "# optional: added in 5.19\n"
        "CONFIG_B=y\n"
        "CONFIG_C=m\n"
        "# CONFIG_D is not set\n"
        'CONFIG_E="-uffd"\n'
        "CONFIG_F=0x1000\n"
    )
    opts = {o.name: o for o in parse_fragment(text, "f.config")}
    assert [o.value for o in opts.values()] == ["y", "y", "m", "n", '"-uffd"', "0x1000"]
    assert opts["B"].optional == "added in 5.19"
    assert opts["A"].optional is None and opts["C"].optional is None  # only the next line
    assert opts["D"].where == "f.config:6"
    assert opts["D"].line() == "# CONFIG_D is not set"


@pytest.mark.parametrize(
    "line, message",
    [
        ("USERFAULTFD=y", r"f.config:2: 'USERFAULTFD=y' is not a Kconfig line"),
        ("CONFIG_A=yes", r"f.config:2: CONFIG_A=yes: a value must be"),
        ("CONFIG_A=unquoted string", "a value must be"),
    ],
)
def test_malformed_fragment_lines_name_file_and_line(line, message):
    with pytest.raises(UsageError, match=message):
        parse_fragment(f"CONFIG_OK=y\n{line}\n", "f.config")


def test_later_fragment_wins_and_the_override_is_noted():
    a = parse_fragment('CONFIG_LOCALVERSION="-uffd-min"\nCONFIG_X=y\n', "min.config")
    b = parse_fragment('CONFIG_LOCALVERSION="-uffd-debug"\nCONFIG_X=y\n', "debug.config")
    merged, notes = merge_fragments([a, b])
    assert merged["LOCALVERSION"].value == '"-uffd-debug"'
    assert notes == [
        'debug.config:1: CONFIG_LOCALVERSION="-uffd-debug" overrides '
        'min.config:1: CONFIG_LOCALVERSION="-uffd-min"'
    ]


def test_apply_options_replaces_base_lines():
    requested, _ = merge_fragments(
        [parse_fragment("CONFIG_MODULES=y\n# CONFIG_SHMEM is not set\nCONFIG_NEW=y\n", "f")]
    )
    merged = apply_options(RECORDED_CONFIG, requested)
    values = parse_config(merged)
    assert values["MODULES"] == "y" and values["SHMEM"] == "n" and values["NEW"] == "y"
    assert merged.count("CONFIG_MODULES") == 1 and merged.count("CONFIG_SHMEM") == 1
    assert values["USERFAULTFD"] == "y"  # untouched lines stay


def test_find_dropped_on_recorded_config():
    frag = (
        "CONFIG_USERFAULTFD=y\n"
        "CONFIG_MODULES=y\n"  # tinyconfig result says not set
        "CONFIG_VIRTIO_NET=y\n"  # absent from the final config
        "# CONFIG_ACPI is not set\n"  # absent counts as not set
        "# CONFIG_SHMEM is not set\n"  # but SHMEM=y
        "CONFIG_NR_CPUS=0x8\n"  # the same number
        'CONFIG_LOCALVERSION="-uffd-min"\n'
    )
    requested, _ = merge_fragments([parse_fragment(frag, "f")])
    dropped = find_dropped(requested, parse_config(RECORDED_CONFIG))
    assert {d.option.name: d.got for d in dropped} == {
        "MODULES": "n",
        "VIRTIO_NET": None,
        "SHMEM": "y",
    }
    text = dropped[1].describe()
    assert text.startswith("CONFIG_VIRTIO_NET=y (f:3): got absent")


# -- Kconfig: why an option was dropped -------------------------------------------------------

# Cut from linux-source-6.1 (init/Kconfig, drivers/block/Kconfig, drivers/block/zram/Kconfig,
# crypto/Kconfig, mm/Kconfig, arch/x86/Kconfig), with the help texts that matter kept.
# Written with spaces here; the fixture turns each leading 4 spaces into the tab the kernel
# uses, so help texts end up indented "\t  " as in the tree.
KCONFIG_TREE = {
    "Kconfig": 'mainmenu "Linux/$(ARCH) Kernel Configuration"\n\n'
    'source "init/Kconfig"\nsource "mm/Kconfig"\nsource "crypto/Kconfig"\n'
    'source "drivers/block/Kconfig"\nsource "arch/$(SRCARCH)/Kconfig"\n',
    "init/Kconfig": """\
menuconfig EXPERT
    bool "Configure standard kernel features (expert users)"
    select DEBUG_KERNEL
    help
      This option allows certain base kernel options and settings
      to be disabled or tweaked.
      depends on NOT_A_REAL_DEPENDENCY

config SHMEM
    bool "Use full shmem filesystem" if EXPERT
    default y
    depends on MMU
    help
      The shmem is an internal filesystem used to manage shared memory.

config MMU
    def_bool y
""",
    "mm/Kconfig": """\
config USERFAULTFD
    bool "Enable userfaultfd() system call"
    depends on MMU

config HAVE_ARCH_USERFAULTFD_WP
    bool
    help
      Arch has userfaultfd write protection support

config PTE_MARKER
    bool

config PTE_MARKER_UFFD_WP
    bool "Userfaultfd write protection support for shmem/hugetlbfs"
    default y
    depends on HAVE_ARCH_USERFAULTFD_WP
    select PTE_MARKER
""",
    "crypto/Kconfig": """\
menuconfig CRYPTO
    tristate "Cryptographic API"
    select CRYPTO_LIB_UTILS

if CRYPTO

menu "Compression"

config CRYPTO_LZO
    tristate "LZO"
    select CRYPTO_ALGAPI

endmenu

endif    # if CRYPTO
""",
    "drivers/block/Kconfig": """\
menuconfig BLK_DEV
    bool "Block devices"
    depends on BLOCK
    default y

if BLK_DEV

source "drivers/block/zram/Kconfig"

endif # BLK_DEV
""",
    "drivers/block/zram/Kconfig": """\
config ZRAM
    tristate "Compressed RAM block device support"
    depends on BLOCK && SYSFS && MMU
    depends on CRYPTO_LZO || CRYPTO_ZSTD || CRYPTO_LZ4 || CRYPTO_LZ4HC || CRYPTO_842
    select ZSMALLOC
""",
    "arch/x86/Kconfig": """\
config X86_64
    def_bool y

config X86
    def_bool y
    select HAVE_ARCH_USERFAULTFD_WP         if X86_64 && USERFAULTFD
""",
}


@pytest.fixture(scope="module")
def kconfig() -> KconfigIndex:
    tree = {k: re.sub(r"^    ", "\t", v, flags=re.M) for k, v in KCONFIG_TREE.items()}
    index = KconfigIndex(tree.get)
    index.walk("Kconfig", [])
    return index


def test_kconfig_index_inherits_if_and_skips_help(kconfig):
    (zram,) = kconfig.symbols["ZRAM"].definitions
    assert zram.where == "drivers/block/zram/Kconfig:1"
    assert zram.depends[0] == "BLK_DEV"  # from `if BLK_DEV` around the source line
    (expert,) = kconfig.symbols["EXPERT"].definitions
    assert expert.depends == []  # "depends on" inside the help text is text
    (lzo,) = kconfig.symbols["CRYPTO_LZO"].definitions
    assert lzo.depends == ["CRYPTO"]
    assert kconfig.symbols["HAVE_ARCH_USERFAULTFD_WP"].selected_by == [
        "X86 if X86_64 && USERFAULTFD"
    ]


def test_unmet_dependency_is_named_with_values(kconfig):
    final = parse_config("CONFIG_BLK_DEV=y\nCONFIG_BLOCK=y\nCONFIG_SYSFS=y\nCONFIG_MMU=y\n")
    assert explain(kconfig.symbols["ZRAM"], "y", final) == [
        "unmet: depends on CRYPTO_LZO || CRYPTO_ZSTD || CRYPTO_LZ4 || CRYPTO_LZ4HC || "
        "CRYPTO_842 [CRYPTO_LZO=n, CRYPTO_ZSTD=n, CRYPTO_LZ4=n, CRYPTO_LZ4HC=n, CRYPTO_842=n] "
        "(drivers/block/zram/Kconfig:1)"
    ]


def test_hidden_prompt_is_explained(kconfig):
    final = {"MMU": "y"}
    assert explain(kconfig.symbols["SHMEM"], "y", final) == [
        "unmet: its prompt needs EXPERT [EXPERT=n] (init/Kconfig:9)"
    ]


def test_promptless_symbol_names_its_selectors(kconfig):
    why = explain(kconfig.symbols["HAVE_ARCH_USERFAULTFD_WP"], "y", {"X86": "y", "X86_64": "y"})
    assert why == [
        "no prompt (mm/Kconfig:5): set only by a select from "
        "X86 if X86_64 && USERFAULTFD [X86=y, X86_64=y, USERFAULTFD=n]"
    ]


def test_forced_on_by_select(kconfig):
    values = {"PTE_MARKER_UFFD_WP": "y"}
    assert explain(kconfig.symbols["PTE_MARKER"], "n", values) == [
        "forced on by a select from PTE_MARKER_UFFD_WP"
    ]


def test_promptless_default_cannot_be_turned_off(kconfig):
    assert explain(kconfig.symbols["MMU"], "n", {"MMU": "y"}) == [
        "no prompt (init/Kconfig:16): set by its default y"
    ]


def test_unknown_symbol(kconfig):
    assert explain(kconfig.symbols.get("USERFALTFD"), "y", {}) == [
        "no such option in this tree (misspelt, renamed or removed?)"
    ]


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("A", 2),
        ("!A", 0),
        ("M", 1),
        ("A && M", 1),
        ("N || M", 1),
        ("!(A && N)", 2),
        ("A && !N && (M || N)", 1),
        ('S = "lzo-rle"', 2),
        ("S != y", 2),
        ("NR > 4 && NR <= 8", 2),
        ("NR >= 16", 0),
        ("UNSET = n", 2),
        ("$(cc-option,-mfoo)", 2),
    ],
)
def test_eval_expr(expr, expected):
    values = {"A": "y", "M": "m", "N": "n", "S": '"lzo-rle"', "NR": "8"}
    assert eval_expr(expr, values) == expected
