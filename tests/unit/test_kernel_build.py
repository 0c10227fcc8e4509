"""kernel build / kernel info: fragments, Kconfig reasons, patch series, config discovery.

Config texts are excerpts of a real tinyconfig + minimal.config build of linux-source-6.1;
the Kconfig snippets are cut from the same tree. Patch series are made by `git
format-patch` on a scratch repository, as a developer's would be.
"""

import argparse
import gzip
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness import REPO_ROOT, HarnessError, UsageError
from harness.kernel import inspect_kernel
from harness.kernel_build import (
    BZIMAGE,
    BuildRequest,
    KconfigIndex,
    Make,
    add_kernel_parser,
    apply_options,
    apply_series,
    assess_config,
    build_kernel,
    config_sources,
    config_warnings,
    embedded_config,
    eval_expr,
    explain,
    find_dropped,
    find_modules_tree,
    format_info,
    load_series,
    merge_fragments,
    parse_config,
    parse_fragment,
    read_fragments,
    series_from_text,
    split_mbox,
    verify,
)

CONFIGS = REPO_ROOT / "kernel-configs"

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


# -- patch series -----------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_DATE="2024-01-01T00:00:00Z")
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()


ORIGINAL = {
    "mm/userfaultfd.c": "".join(f"line {i}\n" for i in range(1, 41)),
    "fs/userfaultfd.c": "".join(f"fs line {i}\n" for i in range(1, 41)),
}


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    f = repo / path
    f.write_text(f.read_text().replace(old, new, 1))


@pytest.fixture
def upstream(tmp_path) -> Path:
    """A tree with two patch series made from it: good.mbox and bad.mbox (patch 2 of 2
    expects text the tree does not have), plus the clean base commit checked out."""
    if not shutil.which("git") or not shutil.which("patch"):
        pytest.skip("git and patch are needed")
    repo = tmp_path / "upstream"
    for path, text in ORIGINAL.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "good")
    _edit(repo, "mm/userfaultfd.c", "line 10\n", "line 10 wp\n")
    git(repo, "commit", "-q", "-am", "userfaultfd: add UFFDIO_CONTINUE ioctl")
    _edit(repo, "fs/userfaultfd.c", "fs line 20\n", "fs line 20 minor\n")
    (repo / "mm" / "new.c").write_text("new file\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "mm: add a new file")
    (tmp_path / "good.mbox").write_text(
        git(repo, "format-patch", "--stdout", "-2", "--cover-letter") + "\n"
    )
    git(repo, "checkout", "-q", "-b", "bad", "main")
    _edit(repo, "mm/userfaultfd.c", "line 30\n", "line 30 ok\n")
    git(repo, "commit", "-q", "-am", "userfaultfd: first patch applies")
    _edit(repo, "fs/userfaultfd.c", "fs line 5\n", "something else\n")
    git(repo, "commit", "-q", "-am", "scratch: not in the series")
    _edit(repo, "fs/userfaultfd.c", "something else\n", "something else, changed\n")
    git(repo, "commit", "-q", "-am", "userfaultfd: second patch conflicts")
    series = git(repo, "format-patch", "--stdout", "HEAD~3..HEAD")
    # Drop the middle commit, so patch 2 expects text the tree never had.
    msgs = split_mbox(series + "\n")
    (tmp_path / "bad.mbox").write_text(msgs[0] + msgs[2])
    git(repo, "checkout", "-q", "main")
    return repo


def _tree_files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


def _progress_log() -> tuple[list[str], object]:
    seen: list[str] = []
    return seen, lambda phase, msg: seen.append(f"{phase}: {msg}")


def test_format_patch_mbox_is_split_with_subjects(upstream, tmp_path):
    patches, notes = load_series(tmp_path / "good.mbox")
    assert [p.subject for p in patches] == [
        "[PATCH 1/2] userfaultfd: add UFFDIO_CONTINUE ioctl",
        "[PATCH 2/2] mm: add a new file",
    ]
    assert len(notes) == 1 and "[PATCH 0/2]" in notes[0] and "no diff" in notes[0]


def test_lore_thread_order_and_encoded_subjects():
    def mail(n: int, subject: str, body: str) -> str:
        return (
            f"From mboxrd@z Thu Jan  1 00:00:00 1970\nFrom: A <a@example.org>\n"
            f"Subject: {subject}\nMessage-Id: <{n}@x>\n\n{body}\n"
        )

    diff = "---\n a | 1 +\ndiff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\n"
    text = (
        mail(1, "[PATCH v2 2/2] mm: second", diff)
        + mail(2, "Re: [PATCH v2 1/2] first", "Looks good.\n")
        + mail(3, "=?utf-8?q?=5BPATCH_v2_1/2=5D_userfaultfd=3A_caf=C3=A9?=", diff)
    )
    patches, notes = series_from_text(text, "thread.mbox")
    assert [p.subject for p in patches] == [
        "[PATCH v2 1/2] userfaultfd: café",
        "[PATCH v2 2/2] mm: second",
    ]
    assert notes == [
        "skipped thread.mbox message 2: 'Re: [PATCH v2 1/2] first': no diff in it "
        "(cover letter or reply)"
    ]


def _clone(upstream: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", str(upstream), str(tree)], check=True)
    return tree


def test_git_tree_gets_the_series_with_git_am(upstream, tmp_path):
    tree = _clone(upstream, tmp_path)
    before = git(tree, "rev-parse", "HEAD")
    seen, progress = _progress_log()
    apply_series(tree, [tmp_path / "good.mbox"], progress)
    log = git(tree, "log", "--format=%s", f"{before}..HEAD").splitlines()
    assert log == ["mm: add a new file", "userfaultfd: add UFFDIO_CONTINUE ioctl"]
    assert git(tree, "status", "--porcelain") == ""
    assert "line 10 wp" in (tree / "mm/userfaultfd.c").read_text()
    assert "patch: 2/2 applied: [PATCH 2/2] mm: add a new file" in seen

    # A rebuild with the same --patches finds them in the tree and skips them.
    seen.clear()
    apply_series(tree, [tmp_path / "good.mbox"], progress)
    assert git(tree, "rev-list", "--count", f"{before}..HEAD") == "2"
    assert sum("already in the tree" in s for s in seen) == 2


def test_git_tree_conflict_names_patch_and_restores_tree(upstream, tmp_path):
    tree = _clone(upstream, tmp_path)
    before = git(tree, "rev-parse", "HEAD")
    files = _tree_files(tree)
    _, progress = _progress_log()
    with pytest.raises(HarnessError) as e:
        # The good series applies first; the bad one fails at its second patch.
        apply_series(tree, [tmp_path / "good.mbox", tmp_path / "bad.mbox"], progress)
    msg = str(e.value)
    assert msg.startswith("patch 4/4 does not apply (git am): ")
    assert "bad.mbox message 2: '[PATCH 3/3] userfaultfd: second patch conflicts'" in msg
    assert "git reset --hard" in msg
    assert git(tree, "rev-parse", "HEAD") == before
    assert git(tree, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (tree / ".git" / "rebase-apply").exists()
    assert _tree_files(tree) == files


def test_dirty_git_tree_is_refused(upstream, tmp_path):
    tree = _clone(upstream, tmp_path)
    _edit(tree, "mm/userfaultfd.c", "line 1\n", "local edit\n")
    with pytest.raises(UsageError, match="uncommitted changes"):
        apply_series(tree, [tmp_path / "good.mbox"], _progress_log()[1])


def test_plain_tree_uses_patch_and_is_restored_on_conflict(upstream, tmp_path):
    tree = tmp_path / "linux-source-6.1"
    shutil.copytree(upstream, tree, ignore=shutil.ignore_patterns(".git"))
    files = _tree_files(tree)
    seen, progress = _progress_log()
    with pytest.raises(HarnessError) as e:
        apply_series(tree, [tmp_path / "good.mbox", tmp_path / "bad.mbox"], progress)
    assert str(e.value).startswith("patch 4/4 does not apply (patch -p1): ")
    assert "the 3 patches this run applied reversed with patch -R" in str(e.value)
    assert "checking file fs/userfaultfd.c" in str(e.value)
    assert sum("applied:" in s for s in seen) == 3
    assert _tree_files(tree) == files  # no new file left, no .orig, no .rej

    apply_series(tree, [tmp_path / "good.mbox"], progress)
    assert (tree / "mm/new.c").read_text() == "new file\n"
    assert "fs line 20 minor" in (tree / "fs/userfaultfd.c").read_text()


def test_patch_directory_and_missing_series(upstream, tmp_path):
    d = tmp_path / "series"
    d.mkdir()
    git(upstream, "format-patch", "-q", "-o", str(d), "main..good")
    patches, _ = load_series(d)
    assert [p.source.rsplit("/", 1)[-1] for p in patches] == [
        "0001-userfaultfd-add-UFFDIO_CONTINUE-ioctl.patch",
        "0002-mm-add-a-new-file.patch",
    ]
    with pytest.raises(UsageError, match="no such file"):
        load_series(tmp_path / "nope.mbox")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no .*patch.* files"):
        load_series(tmp_path / "empty")


# -- kernel info and modules ------------------------------------------------------------------


def fake_bzimage(path: Path, version: str, kernel_bytes: bytes) -> Path:
    """A bzImage as far as the header and payload go: gzip payload after one setup sector."""
    payload = gzip.compress(kernel_bytes)
    data = bytearray(1024)
    data[0x1F1] = 1  # setup_sects: the payload area starts at (1 + 1) * 512
    struct.pack_into("<H", data, 0x1FE, 0xAA55)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x300 - 0x200)
    data[0x300 : 0x300 + len(version) + 1] = version.encode() + b"\0"
    struct.pack_into("<II", data, 0x248, 0, len(payload))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data) + payload)
    return path


def ikconfig(text: str) -> bytes:
    return b"\x7fELF...code..." + b"IKCFG_ST" + gzip.compress(text.encode()) + b"IKCFG_ED..."


VERSION = "6.1.192-uffd-min (root@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP Sat Nov 22"


def test_embedded_config_is_found():
    assert embedded_config(ikconfig("CONFIG_USERFAULTFD=y\n")) == "CONFIG_USERFAULTFD=y\n"
    assert embedded_config(b"no config here") is None


def test_config_sources_in_build_tree(tmp_path):
    out = tmp_path / "build" / "min"
    bz = fake_bzimage(out / BZIMAGE, VERSION, ikconfig(RECORDED_CONFIG))
    (out / ".config").write_text(RECORDED_CONFIG.replace("CONFIG_ZRAM=y", "CONFIG_ZRAM=m"))
    kernel = inspect_kernel(bz)
    sources = config_sources(kernel, boot=tmp_path / "boot")
    assert [s.kind for s in sources] == ["embedded", "build tree"]
    info = format_info(kernel, sources, find_modules_tree(kernel, tmp_path / "modules"))
    assert "release:  6.1.192-uffd-min" in info
    assert "build:    (root@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP Sat Nov 22" in info
    assert "config:   embedded in the kernel (CONFIG_IKCONFIG)" in info
    assert f"also build tree: {out / '.config'} (DIFFERENT)" in info
    assert "modules:  none needed: CONFIG_MODULES is not set" in info
    assert "  CONFIG_USERFAULTFD                  y" in info


def test_embedded_config_is_cached_by_image_content(tmp_path):
    bz = fake_bzimage(tmp_path / "bzImage", VERSION, ikconfig("CONFIG_USERFAULTFD=y\n"))
    kernel = inspect_kernel(bz)
    cache = tmp_path / "cache"
    first = config_sources(kernel, boot=tmp_path, cache=cache)
    (entry,) = (cache / "kconfig").iterdir()
    entry.write_text("CONFIG_FROM_CACHE=y\n")
    assert config_sources(kernel, boot=tmp_path, cache=cache)[0].text == "CONFIG_FROM_CACHE=y\n"
    assert first[0].text == "CONFIG_USERFAULTFD=y\n"
    # No embedded config is remembered too, and a changed image is looked at afresh.
    fake_bzimage(bz, VERSION, b"no config")
    assert config_sources(inspect_kernel(bz), boot=tmp_path, cache=cache) == []
    assert len(list((cache / "kconfig").iterdir())) == 2


def test_boot_config_and_the_userfaultfd_warning(tmp_path):
    bz = fake_bzimage(
        tmp_path / "vmlinuz-6.1.0-9-amd64",
        VERSION.replace("6.1.192-uffd-min", "6.1.0-9-amd64"),
        b"",
    )
    (tmp_path / "config-6.1.0-9-amd64").write_text("# CONFIG_USERFAULTFD is not set\n")
    kernel = inspect_kernel(bz)
    sources = config_sources(kernel, boot=tmp_path)
    assert [s.kind for s in sources] == ["/boot"]
    info = format_info(kernel, sources, None)
    assert "  CONFIG_USERFAULTFD is not set: every uffd workload will skip" in info
    # The arch and PTE-marker options follow from USERFAULTFD: no separate warnings.
    assert "HAVE_ARCH_USERFAULTFD_WP is not set" not in info


def test_no_config_anywhere_is_said(tmp_path):
    kernel = inspect_kernel(fake_bzimage(tmp_path / "bzImage", VERSION, b""))
    assert config_warnings(kernel)[0].endswith("cannot tell what the suite will skip")


def test_assess_modular_drivers():
    values = {"USERFAULTFD": "y", "VIRTIO_NET": "m", "VIRTIO_PCI": "y", "ZRAM": "m"}
    with_modules = {f.check.option: f.problem for f in assess_config(values, True)}
    assert with_modules["VIRTIO_NET"] is None and with_modules["ZRAM"] is None
    without = {f.check.option: f.problem for f in assess_config(values, False)}
    assert without["VIRTIO_NET"] == (
        "CONFIG_VIRTIO_NET is a module but no modules tree was found: "
        "the guest has no network: SSH is impossible"
    )
    assert without["KASAN"] is None  # debug options inform, never warn


def test_find_modules_tree(tmp_path):
    out = tmp_path / "build" / "std"
    bz = fake_bzimage(out / BZIMAGE, VERSION.replace("-uffd-min", ""), b"")
    system = tmp_path / "lib-modules"
    kernel = inspect_kernel(bz)
    assert find_modules_tree(kernel, system) is None
    (system / "6.1.192").mkdir(parents=True)
    (system / "6.1.192" / "modules.dep").touch()
    assert find_modules_tree(kernel, system) == system / "6.1.192"
    built = out / "modules-install" / "lib" / "modules" / "6.1.192"
    built.mkdir(parents=True)
    assert find_modules_tree(kernel, system) == system / "6.1.192"  # no modules.dep yet
    (built / "modules.dep").touch()
    assert find_modules_tree(kernel, system) == built
    # The same through the arch/x86_64 symlink kbuild makes.
    link = out / "arch" / "x86_64" / "boot" / "bzImage"
    link.parent.mkdir(parents=True)
    link.symlink_to(bz)
    assert find_modules_tree(inspect_kernel(link), system) == built


# -- the fragments in kernel-configs/ ---------------------------------------------------------


@pytest.mark.parametrize("name", ["uffd.config", "debug.config", "minimal.config"])
def test_fragment_parses_and_says_what_it_is_for(name):
    text = (CONFIGS / name).read_text()
    assert text.startswith(f"# {name}: ")
    assert parse_fragment(text, name)


def test_minimal_carries_all_of_uffd_config():
    uffd = {o.name: o.value for o in parse_fragment((CONFIGS / "uffd.config").read_text(), "u")}
    minimal = {
        o.name: o.value for o in parse_fragment((CONFIGS / "minimal.config").read_text(), "m")
    }
    assert {k: minimal.get(k) for k in uffd} == uffd


def test_minimal_is_built_in_and_debug_has_lkdtm():
    minimal = read_fragments([CONFIGS / "minimal.config"])
    assert all(o.value != "m" for o in minimal.values())
    assert minimal["PVH"].value == "y" and minimal["64BIT"].value == "y"
    debug = read_fragments([CONFIGS / "minimal.config", CONFIGS / "debug.config"])
    assert debug["LKDTM"].value == "y"
    assert debug["LOCALVERSION"].value == '"-uffd-debug"'


# -- build checks before anything runs --------------------------------------------------------


def _fake_tree(root: Path) -> Path:
    (root / "arch" / "x86").mkdir(parents=True)
    (root / "arch" / "x86" / "Kconfig").write_text("")
    (root / "Makefile").write_text("VERSION = 6\n")
    return root


def _no_progress(phase: str, msg: str) -> None:
    pass


def test_out_dir_of_another_tree_is_refused(tmp_path):
    src = _fake_tree(tmp_path / "linux")
    out = tmp_path / "out"
    out.mkdir()
    (out / "Makefile").write_text(
        "# Automatically generated by /elsewhere/linux/Makefile: don't edit\n"
        "include /elsewhere/linux/Makefile\n"
    )
    with pytest.raises(UsageError, match=r"holds a build of another tree \(/elsewhere/linux\)"):
        build_kernel(BuildRequest(src, out, "tinyconfig"), _no_progress)


def test_in_tree_build_and_bad_fragment_are_refused_before_any_change(tmp_path):
    src = _fake_tree(tmp_path / "linux")
    (src / ".config").write_text("CONFIG_X=y\n")
    with pytest.raises(UsageError, match="in-tree build"):
        build_kernel(BuildRequest(src, tmp_path / "out"), _no_progress)
    (src / ".config").unlink()
    bad = tmp_path / "bad.config"
    bad.write_text("CONFIG_USERFAULTFD=yes\n")
    with pytest.raises(UsageError, match="bad.config:1"):
        build_kernel(BuildRequest(src, tmp_path / "out", fragments=[bad]), _no_progress)
    assert not (tmp_path / "out").exists()


# -- command line -----------------------------------------------------------------------------


def test_kernel_parser():
    p = argparse.ArgumentParser(prog="uffd-harness")
    add_kernel_parser(p.add_subparsers(dest="subcommand", required=True))
    args = p.parse_args(
        ["kernel", "build", "--src", "linux", "--base", "tinyconfig"]
        + ["--config", "a.config", "--config", "b.config", "--patches", "s1.mbox"]
        + ["--patches", "dir", "-j", "3", "--allow-dropped"]
    )
    assert args.config == [Path("a.config"), Path("b.config")]
    assert args.patches == [Path("s1.mbox"), Path("dir")]
    assert (args.jobs, args.base, args.allow_dropped, args.out) == (3, "tinyconfig", True, None)
    assert args.func.__name__ == "cmd_kernel_build"
    args = p.parse_args(["kernel", "info", "build/min/arch/x86/boot/bzImage"])
    assert args.func.__name__ == "cmd_kernel_info"


# -- on a real kernel tree --------------------------------------------------------------------


def _kernel_tree() -> Path | None:
    for candidate in (os.environ.get("UFFD_KERNEL_SRC"), REPO_ROOT / "build/src/linux-source-6.1"):
        if candidate and (Path(candidate) / "mm" / "userfaultfd.c").is_file():
            return Path(candidate)
    return None


def test_dropped_options_on_a_real_tree(tmp_path):
    src = _kernel_tree()
    if src is None:
        pytest.skip(
            "no kernel tree: set UFFD_KERNEL_SRC=DIR or run .ci/build-kernel.sh "
            "(unpacks linux-source-6.1 in build/src)"
        )
    for tool in ("make", "gcc", "flex", "bison"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is needed to run Kconfig")
    fragment = tmp_path / "f.config"
    fragment.write_text(
        "CONFIG_USERFAULTFD=y\n"
        "CONFIG_ZRAM=y\n"  # needs CRYPTO_LZO (or another compressor), not requested
        "CONFIG_NO_SUCH_OPTION=y\n"
        "# optional: only in some trees\n"
        "CONFIG_ANOTHER_MISSING_OPTION=y\n"
    )
    requested = read_fragments([fragment])
    make = Make(src, tmp_path / "out", 2, tmp_path / "log", lambda phase, msg: None)
    make.compiler = None
    (tmp_path / "out").mkdir()
    make("config", "tinyconfig")
    config = tmp_path / "out" / ".config"
    config.write_text(apply_options(config.read_text(), requested))
    make("config", "olddefconfig")
    fatal, tolerated = verify(requested, parse_config(config.read_text()), src)
    reasons = {d.option.name: d.why for d in fatal}
    assert set(reasons) == {"ZRAM", "NO_SUCH_OPTION"}
    assert any("CRYPTO_LZO=n" in w and w.startswith("unmet: depends on") for w in reasons["ZRAM"])
    assert reasons["NO_SUCH_OPTION"] == (
        "no such option in this tree (misspelt, renamed or removed?)",
    )
    assert [d.option.name for d in tolerated] == ["ANOTHER_MISSING_OPTION"]
