"""crashlog against golden console logs (tests/data/crashes/*.log) and targeted cases.

A golden log starts with header lines, then raw console text:
    # KIND: warning                 one per expected report, in order
    # TITLE: WARNING in foo         one per expected report, in order
    # CORRUPTED: 0 1                indexes of reports expected to be marked corrupted
    # SECONDARY: 1                  indexes of reports expected to be marked secondary
    # NONE                          the log holds no report
    # SOURCE: / # NOTE:             where it comes from, what it pins
"""

import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.verdict import crashlog
from harness.verdict.crashlog import Crash, parse

CRASHES = Path(__file__).parent.parent / "data" / "crashes"
GOLDEN = sorted(CRASHES.glob("*.log"))
_HEADER = re.compile(r"^# (KIND|TITLE|CORRUPTED|SECONDARY|SOURCE|NOTE):\s*(.*)$|^# NONE\s*$")


@dataclass
class Golden:
    name: str
    body: str
    kinds: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    corrupted: set[int] = field(default_factory=set)
    secondary: set[int] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    none: bool = False


def load(path: Path) -> Golden:
    lines = path.read_text().splitlines(keepends=True)
    g = Golden(path.name, "")
    n = 0
    while n < len(lines) and (m := _HEADER.match(lines[n].rstrip("\n"))):
        key, value = m.group(1), (m.group(2) or "").strip()
        if key is None:
            g.none = True
        elif key == "KIND":
            g.kinds.append(value)
        elif key == "TITLE":
            g.titles.append(value)
        elif key in ("CORRUPTED", "SECONDARY"):
            getattr(g, key.lower()).update(int(i) for i in value.split())
        elif key == "SOURCE":
            g.sources.append(value)
        n += 1
    g.body = "".join(lines[n:])
    return g


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# --------------------------------------------------------------------------------------------
# Golden logs


def test_enough_golden_logs_from_our_guests_and_public_reports():
    assert len(GOLDEN) >= 14
    assert sum(p.name.startswith("guest-") for p in GOLDEN) >= 4
    kinds = {k for p in GOLDEN for k in load(p).kinds}
    for kind in (
        "panic",
        "warning",
        "bug",
        "oops",
        "kasan",
        "ubsan",
        "gpf",
        "rcu-stall",
        "hung-task",
        "soft-lockup",
        "bad-page",
        "list-corruption",
        "lockdep",
        "sleeping-in-atomic",
        "memory-leak",
        "kfence",
        "slab-corruption",
        "hard-lockup",
        "lockup",
    ):
        assert kind in kinds, f"no golden log of kind {kind}"
    assert any(load(p).none for p in GOLDEN)


@pytest.mark.parametrize("path", GOLDEN, ids=ids(GOLDEN))
def test_golden_header_is_well_formed(path):
    g = load(path)
    assert g.sources, "every golden log names its source"
    assert g.none != bool(g.titles), "either # NONE or at least one # TITLE"
    assert len(g.kinds) == len(g.titles)
    assert g.corrupted | g.secondary <= set(range(len(g.titles)))
    assert g.body.strip()


@pytest.mark.parametrize("path", GOLDEN, ids=ids(GOLDEN))
def test_golden(path):
    g = load(path)
    crashes = parse(g.body)
    assert [(c.kind, c.title) for c in crashes] == list(zip(g.kinds, g.titles, strict=True))
    assert {i for i, c in enumerate(crashes) if c.corrupted} == g.corrupted
    assert {i for i, c in enumerate(crashes) if c.secondary} == g.secondary


@pytest.mark.parametrize("path", GOLDEN, ids=ids(GOLDEN))
def test_golden_records_are_ordered_slices_of_the_log(path):
    body = load(path).body
    lines = body.splitlines()
    previous_end = 0
    for c in parse(body):
        assert previous_end <= c.start < c.end <= len(lines)
        assert c.text == "\n".join(lines[c.start : c.end])
        previous_end = c.end


def _title_func(title: str) -> str | None:
    m = re.search(r" in (\w+)$", title)
    return m.group(1) if m else None


MUTABLE = [p for p in GOLDEN if any(_title_func(t) for t in load(p).titles)]


@pytest.mark.parametrize("path", MUTABLE, ids=ids(MUTABLE))
def test_removing_the_title_function_changes_the_title(path):
    """The titles come from the log's frames, not from luck: take the function out of every
    frame and header, and the same report gets another title."""
    g = load(path)
    k, func = next((k, f) for k, t in enumerate(g.titles) if (f := _title_func(t)))
    # `func.cold+0x..`, `func.isra.0+0x..` are the same function
    mutated = re.sub(rf"\b(?:__x64_)?{func}(?:\.\w+)*\+0x", "0x", g.body)
    crashes = parse(mutated)
    assert len(crashes) == len(g.titles)
    assert crashes[k].kind == g.kinds[k]
    assert crashes[k].title != g.titles[k]


# --------------------------------------------------------------------------------------------
# Console prefixes

WARNING = load(CRASHES / "syzbot-6.0-warning-change_pte_range-uffd-wp.log").body
PREFIXES = {
    "timestamp": lambda i: f"[ {12 + i / 1000:11.6f}] ",
    "timestamp+caller": lambda i: f"[ {12 + i / 1000:11.6f}][ T4242] ",
    "cpu-caller": lambda i: f"[ {12 + i / 1000:11.6f}][    C1] ",
    "syslog-level+timestamp": lambda i: f"<4>[ {12 + i / 1000:11.6f}] ",
    "syslog-level": lambda i: "<4>",
}


@pytest.mark.parametrize("style", PREFIXES)
def test_console_prefixes_are_stripped(style):
    prefixed = "\n".join(PREFIXES[style](i) + line for i, line in enumerate(WARNING.splitlines()))
    crashes = parse(prefixed)
    assert [(c.kind, c.title) for c in crashes] == [("warning", "WARNING in change_pte_range")]
    assert crashes[0].text.splitlines()[0].startswith(PREFIXES[style](0).rstrip()[:3])


def test_crlf_console_gives_the_same_reports():
    crlf = WARNING.replace("\n", "\r\n")
    assert [c.title for c in parse(crlf)] == ["WARNING in change_pte_range"]
    assert "\r" not in parse(crlf)[0].text


# --------------------------------------------------------------------------------------------
# False positives

NOT_CRASHES = [
    "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
    "[   10.1] traps: a.out[123] general protection fault ip:401136 sp:7ffd1f0 error:0 "
    "in a.out[401000+1000]",
    "[   10.2] a.out[124]: segfault at 0 ip 0000000000401136 sp 00007ffd error 6 in "
    "a.out[401000+1000]",
    "[   10.3] INFO: lockdep is turned off.",
    "[   10.4] INFO: NMI handler (nmi_cpu_backtrace_handler) took too long to run: 5.809 msecs",
    '[   10.5] PCI: Using host bridge windows from ACPI; if necessary, use "pci=nocrs" and '
    "report a bug",
    "[   10.6] AMD-Vi: AMD IOMMUv2 functionality not available on this system - This is not a bug.",
    "[   10.7] ODEBUG: object is on stack, but not annotated",
    "[   10.8] sysrq: Show Blocked State",
    "uffd-harness: ERROR: WARNING is just a word here",
]


@pytest.mark.parametrize("line", NOT_CRASHES)
def test_known_false_positives(line):
    assert parse(line) == []


# --------------------------------------------------------------------------------------------
# Several reports, consequences, truncation

KASAN = load(CRASHES / "syzbot-5.18-kasan-uaf-handle_userfault.log").body
BUG = load(CRASHES / "syzbot-5.19-kernel-bug-mcopy_continue.log").body


def test_two_reports_in_one_log():
    text = WARNING + "[  99.000000] random: crng init done\n" + KASAN
    crashes = parse(text)
    assert [c.title for c in crashes] == [
        "WARNING in change_pte_range",
        "KASAN: use-after-free Read in handle_userfault",
    ]
    first, second = crashes
    assert first.end <= second.start
    assert "random: crng init done" not in first.text + second.text
    assert second.text.splitlines()[-1].startswith("=====")


def test_warning_and_its_end_trace_are_one_report():
    crashes = parse(BUG)
    assert len(crashes) == 1
    assert crashes[0].text.splitlines()[0] == "------------[ cut here ]------------"
    assert crashes[0].text.splitlines()[-1].startswith("---[ end trace")


def test_panic_after_an_oops_is_secondary_and_the_oops_names_the_bug():
    g = load(CRASHES / "patch-6.6-gpf-then-panic-fatal-exception.log")
    crashes = parse(g.body)
    assert [c.secondary for c in crashes] == [False, True]
    assert crashes[0].title == "general protection fault in __kobject_del"
    # Each ends where the kernel stopped: the oops at its end marker, the panic at its last
    # line before the commit message resumes.
    assert crashes[0].text.splitlines()[-1].strip().startswith("---[ end trace")
    assert crashes[1].text.splitlines()[-1].strip() == "Rebooting in 1 seconds.."


def test_a_panic_alone_names_itself_and_a_missing_cause_is_corrupted():
    sysrq = load(CRASHES / "guest-6.1-sysrq-crash-panic.log").body
    (panic,) = parse(sysrq)
    assert not panic.secondary and not panic.corrupted
    (orphan,) = parse("[ 1.000000] Kernel panic - not syncing: Fatal exception\n")
    assert orphan.title == "Kernel panic - not syncing: Fatal exception" and orphan.corrupted


def test_truncated_inside_the_stack_is_corrupted_but_keeps_its_title():
    lines = KASAN.splitlines()
    cut = next(i for i, line in enumerate(lines) if "shmem_fault+0x" in line)
    (crash,) = parse("\n".join(lines[:cut]))
    assert crash.title == "KASAN: use-after-free Read in handle_userfault"
    assert crash.corrupted


def test_truncated_before_any_frame_falls_back_to_a_sensible_title():
    text = "[   45.595973] WARNING: CPU: 1 PID: 2474 at mm/userfaultfd.c:2067\n"
    (crash,) = parse(text)
    assert (crash.kind, crash.title, crash.corrupted) == (
        "warning",
        "WARNING at mm/userfaultfd.c:2067",
        True,
    )
    lines = BUG.splitlines()
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith("Code:"))]
    (crash,) = parse("\n".join(head))
    assert crash.title == "kernel BUG in mcopy_continue"  # the RIP line survived


def test_crash_is_a_frozen_record():
    crash = parse(BUG)[0]
    assert isinstance(crash, Crash)
    with pytest.raises(AttributeError):
        crash.title = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# The table itself

KINDS = {
    "oops",
    "bug",
    "warning",
    "kasan",
    "kfence",
    "kmsan",
    "kcsan",
    "ubsan",
    "gpf",
    "panic",
    "rcu-stall",
    "hung-task",
    "soft-lockup",
    "hard-lockup",
    "lockup",
    "bad-page",
    "list-corruption",
    "slab-corruption",
    "lockdep",
    "sleeping-in-atomic",
    "memory-leak",
}
SOURCES = {"header", "rip", "at", "stack"}


@pytest.mark.parametrize("pattern", crashlog.PATTERNS, ids=lambda p: p.start.pattern[:40])
def test_pattern_table_entries_are_consistent(pattern):
    assert pattern.kind in KINDS
    assert set(pattern.frames) <= SOURCES
    groups = set(pattern.start.groupindex) | set(pattern.extra.groupindex if pattern.extra else ())
    for template in (pattern.title, *pattern.fallback):
        keys = {k for _, k, _, _ in string.Formatter().parse(template) if k}
        assert keys <= groups | {"func"}, template
    if "{func}" in pattern.title:
        assert pattern.frames, "a title with a function needs somewhere to find it"
        assert pattern.fallback, "and a title for when it cannot be found"


def test_kasan_header_alone_is_titled_from_the_header():
    (crash,) = parse("[ 5.000000] BUG: KASAN: slab-out-of-bounds in mfill_atomic+0x1/0x2\n")
    assert (crash.kind, crash.title, crash.corrupted) == (
        "kasan",
        "KASAN: slab-out-of-bounds in mfill_atomic",
        True,
    )


# --------------------------------------------------------------------------------------------
# Titles that must not change from run to run, and headers without a golden log of their own

# Two prints of one bug from two runs: another CPU, task, pid, address, count.
SAME_BUG_TWICE = {
    "spinlock bad magic": (
        "[   12.000001] BUG: spinlock bad magic on CPU#0, swapper/0/1",
        "[  907.123456] BUG: spinlock bad magic on CPU#3, kworker/3:2/4711",
    ),
    "dentry still in use": (
        "[   40.1] BUG: Dentry 00000000d4f0a1b2{i=1a2b,n=foo}  still in use (1) "
        "[unmount of tmpfs tmpfs]",
        "[   41.2] BUG: Dentry 000000009e8f7c6d{i=3c4d,n=bar}  still in use (2) "
        "[unmount of ext4 sda1]",
    ),
    "spinlock lockup": (
        "[   50.0] BUG: spinlock lockup suspected on CPU#1, a.out/1234",
        "[   51.0] BUG: spinlock lockup suspected on CPU#0, uffd-agent/98765",
    ),
    "unregistered key": (
        "[    1.0] BUG: key ffff888012345678 has not been registered!",
        "[    2.0] BUG: key ffff8880abcdef00 has not been registered!",
    ),
    "invalid subclass": (
        "[    3.0] BUG: looking up invalid subclass: 8",
        "[    4.0] BUG: looking up invalid subclass: 12",
    ),
}


@pytest.mark.parametrize("name", SAME_BUG_TWICE)
def test_generic_bug_titles_are_the_same_across_runs(name):
    first, second = SAME_BUG_TWICE[name]
    (a,) = parse(first)
    (b,) = parse(second)
    assert a.kind == b.kind == "bug"
    assert a.title == b.title
    # Nothing of what changes from run to run is left in it.
    assert not re.search(r"\d|0x|CPU#|/", a.title.removeprefix("BUG: ")), a.title


def test_generic_bug_titles_keep_what_tells_bugs_apart():
    titles = {parse(pair[0])[0].title for pair in SAME_BUG_TWICE.values()}
    assert titles == {
        "BUG: spinlock bad magic",
        "BUG: Dentry still in use",
        "BUG: spinlock lockup suspected",
        "BUG: key has not been registered",
        "BUG: looking up invalid subclass",
    }


@pytest.mark.parametrize("count", ["1 new suspected memory leak", "12 new suspected memory leaks"])
def test_the_kmemleak_scan_line_is_a_memory_leak(count):
    (crash,) = parse(f"[  612.3] kmemleak: {count} (see /sys/kernel/debug/kmemleak)\n")
    assert (crash.kind, crash.title) == ("memory-leak", "kmemleak: new suspected memory leaks")


def test_kmemleak_lines_that_are_not_leaks_are_not_crashes():
    assert (
        parse(
            "[    0.5] kmemleak: Kernel memory leak detector initialized "
            "(mem pool available: 15997)"
        )
        == []
    )
    assert parse("[    0.6] kmemleak: Automatic memory scanning thread started") == []


# No public console log of this report turned up (lore, syzbot): this one is built from the
# printing code of kernel/locking/lockdep.c (print_lock_nested_lock_not_held, 6.1) around a
# real stack, so the pattern is tested; it is not a golden log.
NESTED_LOCK = """\
[   33.000001] ==================================
[   33.000002] WARNING: Nested lock was not taken
[   33.000003] 6.1.0-uffd-debug #1 Not tainted
[   33.000004] ----------------------------------
[   33.000005] uffd-agent/321 is trying to lock:
[   33.000006] ffff888003c1e0a8 (&mm->mmap_lock){++++}-{3:3}, at: mfill_atomic+0x9d/0x6a0
[   33.000007]
[   33.000008] but this task is not holding:
[   33.000009] &ctx->map_changing_lock
[   33.000010]
[   33.000011] stack backtrace:
[   33.000012] CPU: 1 PID: 321 Comm: uffd-agent Not tainted 6.1.0-uffd-debug #1
[   33.000013] Call Trace:
[   33.000014]  <TASK>
[   33.000015]  dump_stack_lvl+0x45/0x5e
[   33.000016]  __lock_acquire+0x1a2b/0x1f70
[   33.000017]  lock_acquire+0xc2/0x2b0
[   33.000018]  down_read+0x3c/0x150
[   33.000019]  mfill_atomic+0x9d/0x6a0
[   33.000020]  userfaultfd_ioctl+0x5f1/0x1a70
[   33.000021]  __x64_sys_ioctl+0x8a/0xc0
[   33.000022]  do_syscall_64+0x3b/0x90
[   33.000023]  entry_SYSCALL_64_after_hwframe+0x64/0xce
[   33.000024]  </TASK>
"""


@pytest.mark.parametrize(
    "header", ["WARNING: Nested lock was not taken", "[ BUG: Nested lock was not taken ]"]
)
def test_lockdep_nested_lock_not_taken(header):
    text = NESTED_LOCK.replace("WARNING: Nested lock was not taken", header)
    (crash,) = parse(text)
    assert (crash.kind, crash.title) == (
        "lockdep",
        "WARNING: nested lock was not taken in mfill_atomic",
    )
