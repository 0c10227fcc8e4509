"""Kernel crash reports in console text: which kind, and a stable title.

`parse(text)` turns a console log (or a test's slice of it, or `dmesg` output) into `Crash`
records such as `WARNING in mwriteprotect_range` or `INFO: task hung in pipe_read`. The work
is driven by `PATTERNS`, a table of report headers; each entry names the report's kind, its
title template and where the function in the title comes from. The function is the first
stack frame that is not generic (`GENERIC_FRAMES`: dump_stack, __warn, lock helpers, ...),
so the same bug gets the same title on every run, kernel build and machine, the way
syzkaller titles its reports. Golden console logs in tests/data/crashes/ pin the behaviour.

Pure text in, records out: no processes and no files, so it works on a saved log.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from harness.kernel.printk import split_line

# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Crash:
    """One kernel report. `start`/`end` are 0-based line indexes into the parsed text (end
    exclusive); `text` is those raw lines, console prefixes kept, as evidence."""

    kind: str
    title: str
    text: str
    start: int
    end: int
    # The title lacks its function or the report was cut short (truncated log, console
    # log level too low for the stack, a report interleaved with another).
    corrupted: bool = False
    # A consequence of an earlier report in the same text, e.g. "Kernel panic - not
    # syncing: Fatal exception" after an oops: the earlier report names the bug.
    secondary: bool = False


# --------------------------------------------------------------------------------------------
# Line anatomy

_FUNC = r"(?P<func>[A-Za-z_][\w.]*)\+0x[0-9a-f]+"
# A stack frame with an offset: ` func+0x12/0x34`, ` [<ffffffff81234567>] func+0x12/0x34`,
# ` ? func+0x..` (unreliable, `q`), ` func+0x12/0x34 [module]`, symbolized or not.
_FRAME = re.compile(
    r"^\s*(?:\[<?(?:0x)?[0-9a-f]+>?\]\s*){0,2}(?P<q>\?\s+)?" + _FUNC + r"(?:/0x[0-9a-f]+)?"
)
# Inlined frames from a symbolizer: ` func file.c:12 [inline]` (no address of their own).
_INLINE_FRAME = re.compile(
    r"^\s*(?:\[<?(?:0x)?[0-9a-f]+>?\]\s*)?[A-Za-z_][\w.]* \S+:\d+ \[inline\]"
)
# The faulting instruction pointer of x86 (RIP), arm64/riscv (pc, epc), old arm (PC is at).
_RIP = re.compile(
    r"^\s*(?:RIP|NIP|IP|pc|epc|PC is at)\s*:?\s*(?:\d{4}:)?(?:\[<[0-9a-f]+>\]\s*)?" + _FUNC
)
# Lockdep names where a lock was taken: `..., at: func+0x12/0x34`.
_AT = re.compile(r", at: (?:\[<[0-9a-f]+>\]\s*)?" + _FUNC)
_STACK_START = re.compile(
    r"^\s*(?:Call [Tt]race:|backtrace(?: \(crc [0-9a-f]+\))?:|Allocated by task \d+:"
    r"|Freed by task \d+:)"
)
_MARKER = re.compile(r"^\s*<(?P<close>/)?(?P<ctx>TASK|IRQ|NMI|SOFTIRQ|EOI)>\s*$")
_REGISTERS = re.compile(
    r"^\s*(?:RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d+|FS|CS|CR\d|DR\d|PKRU|Code|EFLAGS|"
    r"pc|lr|sp|x\d+|epc|ra|gp|tp|t\d|s\d+|a\d|status|pstate|ORIG_RAX)\s*:"
)
# Lines that plausibly continue a report after its stack trace has ended: more registers,
# module lists, end markers, NMI backtraces of other CPUs, RCU stall details.
_REPORTISH = re.compile(
    r"^\s*(?:Modules linked in|CPU: \d+|Hardware name|Workqueue:|Call [Tt]race|---\[ |"
    r"Kernel Offset|Rebooting in|Dumping ftrace|irq event stamp|hardirqs last|softirqs last|"
    r"NMI backtrace|Sending NMI|INFO: NMI handler|rcu: |\(t=\d+|task:\S+\s+state:|"
    r"Disabling lock debugging|Preemption disabled at|Tainted: |CR2: |\(ftrace buffer empty\)|"
    r"\[<[0-9a-f]+>\]|[0-9a-f]{16}(?: [0-9a-f]{16})*\s*$)"
)
_TERMINATOR = re.compile(r"^\s*---\[ end (?:trace|Kernel panic)")
# Lines printed just before a report's header that belong to it.
_PREAMBLE = re.compile(
    r"^\s*(?:-+\[ cut here \]-+|={20,}|list_(?:add|del) corruption\b.*|refcount_t: .*|"
    r"ODEBUG: .*|usercopy: .*|page:\s*[0-9a-f]* ?refcount:.*|page: refcount:.*|flags: .*|"
    r"raw: .*|head: .*|page_type: .*|memcg:.*|anon flags: .*|page dumped because: .*|"
    r"VM_BUG_ON\w*\(.*)$"
)
_CUT_HERE = re.compile(r"^\s*-+\[ cut here \]-+\s*$")

# Only lines containing one of these go through the pattern table: a cheap filter that
# keeps parsing a multi-megabyte console log fast (substring tests beat a regex here).
_HEADER_HINTS = (
    "BUG",
    "WARNING",
    "INFO: ",
    "Oops",
    "anic",
    "PANIC",
    "general protection",
    "stack segment",
    "divide error",
    "invalid opcode",
    "int3: ",
    "Internal error",
    "Unable to handle",
    "UBSAN",
    "unreferenced object",
    "LOCKUP",
    "suspected memory leak",
)


def _may_be_header(text: str) -> bool:
    return any(hint in text for hint in _HEADER_HINTS)


# Messages that look like report headers but are not kernel bugs.
IGNORED = tuple(
    re.compile(p)
    for p in (
        r"WARNING: /etc/ssh/moduli does not exist",  # sshd
        r"WARNING: workqueue cpumask: online intersect > possible intersect",
        r"WARNING: Unprivileged eBPF is enabled",
        r"WARNING: kernel not compiled with CPU_SRSO",
        r"INFO: lockdep is turned off",
        r"INFO: Stall ended before state dump start",
        r"INFO: NMI handler \(\w+\) took too long",
        r"(?:handler|interrupt).*took too long",
        r"general protection fault ip:",  # a user process's fault (traps: lines)
        r"\berror:\d+ in [^ ]+\[",
        # user-space faults (`traps: a.out[123] ...`), not the kernel's own double fault
        r"^traps: (?!PANIC: double fault)",
    )
)


@dataclass(frozen=True)
class _Line:
    raw: str
    msg: str  # console prefix removed, indentation kept (frames are indented)
    key: str  # msg stripped, what headers are matched against
    ts: float | None
    prefixed: bool


def _split(raw: str) -> _Line:
    p = split_line(raw)
    return _Line(raw.rstrip("\r"), p.msg, p.msg.strip(), p.ts, p.prefixed)


# --------------------------------------------------------------------------------------------
# Generic frames: never the function a title is about.


def _regexes(text: str) -> tuple[str, ...]:
    """Whitespace-separated regexes: keeps long lists of function patterns readable."""
    return tuple(text.split())


_GENERIC: dict[str, str] = {
    "reporting machinery": r"""
        dump_stack\w* __dump_stack show_\w+ __show_\w+ print_\w+ _?printk\w* vprintk\w* panic
        vpanic nmi_panic __warn\w* warn_\w+ report_bug handle_bug fixup_bug do_error_trap
        do_trap\w* do_invalid_op invalid_op exc_\w+ asm_\w+ oops_\w+ __die\w* die
        page_fault_oops kernelmode_fixup_or_oops __bad_area\w* bad_area\w* no_context
        dump_header dump_backtrace bad_page debug_object\w* debug_check\w*
    """,
    "stack walking, printed when a report interrupts another one": r"""
        \w*unwind\w* get_stack_info\w* in_\w+_stack stack_trace_\w+ arch_stack_walk nmi_\w+
        default_do_nmi watchdog_\w+
    """,
    "sanitizers": r"""
        \w*kasan\w* __asan_\w+ \w*ubsan\w* \w*kmsan\w* __msan_\w+ \w*kcsan\w* kfence_\w+
        check_memory_region\w* __sanitizer\w*
    """,
    "locks, sleeping, scheduling": r"""
        _raw_\w+ \w*spin_(?:un)?lock\w* \w*spin_trylock\w* do_raw_\w+ queued_\w+
        native_queued_\w+ _*mutex_\w+ _*down_\w+ down _*up_(?:read|write)\w* _*rwsem_\w+
        percpu_(?:down|up)_\w+ _*lock_acquire\w* lock_release lock_acquired? \w*lockdep\w*
        osq_\w+ mmap_(?:read|write)_\w+ _*might_\w+ might_fault _*schedule\w* io_schedule\w*
        context_switch __switch_to\w* preempt_schedule\w* _*cond_resched \w*wait_for_common\w*
        wait_for_completion\w* __wait_on_bit\w* bit_wait\w* out_of_line_wait_on_bit\w*
        prepare_to_wait\w* finish_wait __wake_up\w*
    """,
    "memory and string primitives": r"""
        _*mem(?:cpy|set|move|cmp|chr)\w* str\w*cpy strn?cmp strn?len _?copy_(?:to|from)_user\w*
        raw_copy_\w+ copy_user_\w+ rep_movs\w* __(?:get|put)_user\w* _*k[mvz]?alloc\w* kcalloc
        krealloc\w* _*kmem_cache_\w+ _*slab_\w+ \w*slab_alloc\w* kv?free\w* kmemdup\w*
        kstrdup\w* _*vmalloc\w* vfree _*refcount_\w+ __list_\w+ list_(?:add|del)\w*
    """,
    "interrupt and syscall plumbing": r"""
        _*sysvec_\w+ irq_exit\w* __irq_exit_rcu _*do_softirq\w* __hrtimer_run_queues
        hrtimer_\w+ __run_hrtimer handle_irq_event\w* entry_SYSCALL\w* do_syscall_\w+
        ret_from_fork\w*
    """,
    "queueing work: a warning there is about the caller's work item": r"""
        _*queue_\w*work\w* queue_delayed_work\w* mod_delayed_work\w*
    """,
}
GENERIC_FRAMES = re.compile(
    "(?:" + "|".join(rx for group in _GENERIC.values() for rx in group.split()) + ")$"
)

# Where a stall or lockup is looping is noise; the call that entered the kernel is not.
# A stalled report is titled by the frame just above the first of these (syzkaller does the
# same), so repeated stalls of one bug get one title.
_STALL_ANCHORS = re.compile(
    r"(?:do_syscall_\w+|do_fast_syscall_\w+|process_one_work|ret_from_fork\w*|kthread|"
    r"smpboot_thread_fn|cpu_startup_entry|start_secondary|_*vfs_(?:read|write|ioctl|open)|"
    r"do_iter_\w+|handle_mm_fault|__do_fault|task_work_run|__fput|call_timer_fn|"
    r"run_timer_softirq|run_ksoftirqd|__do_softirq)$"
)
_SYSCALL_PREFIX = re.compile(r"^(?:__x64_|__ia32_|__arm64_|__riscv_|__se_|__do_)")

_HUNG_SKIP = (r".*(?:sched|_lock|_slowlock|down|completion|wait|synchronize|__switch_to).*",)
_FREE_SKIP = _regexes(
    r"""free_\w+ __free_\w+ _*folios?_put\w* put_page\w* release_pages \w+_and_swap_cache
    tlb_\w+"""
)
_SLUB_SKIP = _regexes(
    r"""check_\w+ \w*_debug_processing slab_err object_err slab_bug print_\w+ on_freelist
    free_to_partial_list \w*slab_free\w* __kmem_cache_free\w* do_slab_free restore_bytes"""
)
_ALLOC_SKIP = _regexes(
    r""".*alloc.* .*kmemleak.* kmem_\w+ create_object\w* .*strn?dup.* .*memdup.*
    k?v?asprintf"""
)


# --------------------------------------------------------------------------------------------
# The pattern table


@dataclass(frozen=True)
class Pattern:
    """One kind of report header.

    `start` is searched in the message of a line (console prefix and indentation removed);
    its named groups fill the `title` template, as do those of `extra`, searched in the rest
    of the report. `{func}` is the first non-generic function found, in document order, among
    the `frames` sources: "header" (a `func` group of the header line), "rip" (the faulting
    IP), "at" (lockdep's `at:` lines) and "stack" (frames inside a call trace).
    """

    kind: str
    start: re.Pattern[str]
    title: str
    frames: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()  # titles to try when a template key is missing
    skip: tuple[str, ...] = ()  # frames generic for this kind only (regexes)
    end: re.Pattern[str] | None = None  # a closing line, for reports that have one
    extra: re.Pattern[str] | None = None
    weak: bool = False  # a trap line that a nearby, more specific header refines
    stall: bool = False  # title from the frame above the kernel entry point
    skip_irq: bool = False  # the interrupted context matters, not the interrupt
    # False: the report may lack a stack, so it ends at the first line after its header
    # that does not look like report text (a stack that does follow is still read).
    stack: bool = True
    skip_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.skip:
            object.__setattr__(self, "skip_re", re.compile("(?:" + "|".join(self.skip) + ")$"))


def _p(kind: str, start: str, title: str, *frames: str, **kw) -> Pattern:
    for key in ("end", "extra"):
        if isinstance(kw.get(key), str):
            kw[key] = re.compile(kw[key])
    return Pattern(kind, re.compile(start), title, frames, **kw)


_SEP = r"^={20,}$"
_FAULT = ("rip", "stack")
_WARN_FRAMES = ("header", "rip", "stack")
_WARN_FALLBACK = ("WARNING at {src}", "WARNING: corrupted")
# `WARNING: CPU: 1 PID: 2 at mm/x.c:12 func+0x1/0x2` (to 6.17) and
# `WARNING: mm/x.c:12 at func+0x1/0x2 mm/x.c:12, CPU#1: comm/2` (6.18 on).
_WARN_OLD = r"^WARNING: CPU: \d+ PID: \d+ at {src}(?:(?P<func>[\w.]+)\+0x)?"
_WARN_NEW = r"^WARNING: {src}at (?:(?P<func>[\w.]+)\+0x)?.*CPU#\d+"


def _warnings(path: str, kind: str, title: str, skip: tuple[str, ...] = ()) -> list[Pattern]:
    """WARN()s from one source file (any file if `path` is empty), in both line formats."""
    src = rf"(?P<src>\S*{path}:\d+)(?: |$)"
    # Only the old format can lack the file name (CONFIG_DEBUG_BUGVERBOSE=n).
    optional = f"(?:{src})?"
    return [
        _p(
            kind,
            fmt.format(src=optional if fmt is _WARN_OLD and not path else src),
            title,
            *_WARN_FRAMES,
            fallback=_WARN_FALLBACK,
            skip=skip,
        )
        for fmt in (_WARN_OLD, _WARN_NEW)
    ]


# Order matters: the first entry whose `start` matches a line wins, so specific entries
# come before the generic ones of the same prefix.
# fmt: off
PATTERNS: tuple[Pattern, ...] = (
    # --- panics: always a record of their own
    _p("panic", r"^Kernel panic - not syncing: stack-protector: .* in: (?:(?P<func>[\w.]+))?",
       "kernel panic: stack is corrupted in {func}", "header", "stack",
       fallback=("kernel panic: stack is corrupted",)),
    # (after an oops, panic() prints no stack of its own). The title is the kernel's own
    # line: panic messages are already stable, and users grep for that wording.
    _p("panic", r"^Kernel panic - not syncing: (?P<msg>.*)", "Kernel panic - not syncing: {msg}",
       stack=False),
    # traps.c prints it with its pr_fmt ("traps: ") since 5.x
    _p("panic", r"^(?:traps: )?PANIC: double fault", "PANIC: double fault in {func}", "rip",
       fallback=("PANIC: double fault",)),
    # --- sanitizers: reports framed by ===== lines
    _p("kasan", r"^BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in "
       r"(?:(?P<func>[\w.]+)\+0x)?", "KASAN: invalid-free in {func}", "header", "stack",
       end=_SEP, fallback=("KASAN: invalid-free",)),
    _p("kasan", r"^BUG: KASAN: (?P<bug>[a-z-]+) in (?:(?P<func>[\w.]+)\+0x)?",
       "KASAN: {bug} {access} in {func}", "header", "stack", end=_SEP,
       extra=r"(?P<access>Read|Write) of size",
       fallback=("KASAN: {bug} {access}", "KASAN: {bug} in {func}", "KASAN: {bug}")),
    _p("kasan", r"^BUG: KASAN: (?P<bug>\S+)", "KASAN: {bug}", end=_SEP),
    _p("kfence", r"^BUG: KFENCE: (?P<bug>[a-z -]+?) in (?:(?P<func>[\w.]+)\+0x)?",
       "KFENCE: {bug} in {func}", "header", "stack", end=_SEP, fallback=("KFENCE: {bug}",)),
    _p("kmsan", r"^BUG: KMSAN: (?P<bug>[a-z-]+) in (?:(?P<func>[\w.]+)\+0x)?",
       "KMSAN: {bug} in {func}", "header", "stack", end=_SEP, fallback=("KMSAN: {bug}",)),
    _p("kcsan", r"^BUG: KCSAN: (?P<bug>[a-z-]+) in (?P<what>.+)", "KCSAN: {bug} in {what}",
       end=_SEP),
    _p("ubsan", r"^UBSAN: (?P<bug>[a-z-]+) in ", "UBSAN: {bug} in {func}", "stack", end=_SEP,
       fallback=("UBSAN: {bug}",)),
    # --- page faults in the kernel
    _p("oops", r"^BUG: (?:unable to handle )?kernel NULL pointer dereference",
       "BUG: kernel NULL pointer dereference in {func}", *_FAULT,
       fallback=("BUG: kernel NULL pointer dereference",)),
    _p("oops", r"^BUG: unable to handle (?:page fault for address|kernel paging request)",
       "BUG: unable to handle page fault in {func}", *_FAULT,
       fallback=("BUG: unable to handle page fault",)),
    _p("oops", r"^Unable to handle kernel NULL pointer dereference",
       "BUG: kernel NULL pointer dereference in {func}", *_FAULT,
       fallback=("BUG: kernel NULL pointer dereference",)),
    _p("oops", r"^Unable to handle kernel (?P<what>[a-z -]+?)(?: at virtual address|$)",
       "BUG: unable to handle kernel {what} in {func}", *_FAULT,
       fallback=("BUG: unable to handle kernel {what}",)),
    _p("oops", r"^BUG: unable to handle kernel", "BUG: unable to handle kernel in {func}",
       *_FAULT, fallback=("BUG: unable to handle kernel",)),
    _p("oops", r"^BUG: (?:TASK )?stack guard page was hit",
       "BUG: stack guard page was hit in {func}", "rip",
       fallback=("BUG: stack guard page was hit",)),
    # --- lockups, stalls, hangs
    _p("soft-lockup", r"BUG: soft lockup - CPU#\d+ stuck", "BUG: soft lockup in {func}",
       *_FAULT, stall=True, skip_irq=True, fallback=("BUG: soft lockup",)),
    _p("hard-lockup", r"Watchdog detected hard LOCKUP on cpu",
       "watchdog: hard LOCKUP in {func}", *_FAULT, stall=True, skip_irq=True,
       fallback=("watchdog: hard LOCKUP",)),
    _p("rcu-stall", r"^(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected(?: expedited)? stall",
       "INFO: rcu detected stall in {func}", *_FAULT, stall=True, skip_irq=True,
       skip=(r".*rcu.*",), fallback=("INFO: rcu detected stall",)),
    _p("hung-task", r"^INFO: task .{1,64}:\d+ blocked for more than \d+ seconds",
       "INFO: task hung in {func}", "stack", skip=_HUNG_SKIP, fallback=("INFO: task hung",)),
    _p("hung-task", r"^INFO: task .{1,64}:\d+ can't die for more than \d+ seconds",
       "INFO: task can't die in {func}", "stack", skip=_HUNG_SKIP,
       fallback=("INFO: task can't die",)),
    _p("lockup", r"^BUG: workqueue lockup", "BUG: workqueue lockup", stack=False),
    # --- lockdep
    _p("lockdep", r"^WARNING: (?:possible circular locking dependency|possible recursive "
       r"locking|possible irq lock inversion dependency|\w+-safe -> \w+-unsafe lock order) "
       r"detected", "possible deadlock in {func}", "at", "stack",
       fallback=("possible deadlock",)),
    _p("lockdep", r"^WARNING: inconsistent lock state", "inconsistent lock state in {func}",
       "at", "stack", fallback=("inconsistent lock state",)),
    _p("lockdep", r"^WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in {func}",
       "stack", skip=(r".*rcu.*",), fallback=("WARNING: suspicious RCU usage",)),
    _p("lockdep", r"^WARNING: bad unlock balance detected",
       "WARNING: bad unlock balance in {func}", "at", "stack",
       fallback=("WARNING: bad unlock balance",)),
    _p("lockdep", r"^WARNING: held lock freed", "WARNING: held lock freed in {func}", "at",
       "stack", fallback=("WARNING: held lock freed",)),
    _p("lockdep", r"^WARNING: lock held when returning to user space",
       "WARNING: lock held when returning to user space in {func}", "at",
       fallback=("WARNING: lock held when returning to user space",)),
    _p("lockdep", r"^BUG: Invalid wait context", "BUG: Invalid wait context in {func}",
       "stack", fallback=("BUG: Invalid wait context",)),
    _p("lockdep", r"^BUG: .* still has locks held", "BUG: still has locks held in {func}",
       "at", "stack", fallback=("BUG: still has locks held",)),
    # `WARNING: Nested lock was not taken` (4.15 on; `[ BUG: ... ]` before): a lock taken
    # with a nest_lock annotation (mutex_lock_nest_lock) whose outer lock is not held.
    _p("lockdep", r"^(?:\[ )?(?:WARNING|BUG): Nested lock was not taken",
       "WARNING: nested lock was not taken in {func}", "at", "stack",
       fallback=("WARNING: nested lock was not taken",)),
    _p("lockdep", r"^INFO: trying to register non-static key",
       "INFO: trying to register non-static key in {func}", "stack",
       fallback=("INFO: trying to register non-static key",)),
    # --- sleeping in atomic context
    _p("sleeping-in-atomic", r"^BUG: sleeping function called from invalid context",
       "BUG: sleeping function called from invalid context in {func}", "stack",
       fallback=("BUG: sleeping function called from invalid context",)),
    _p("sleeping-in-atomic", r"^BUG: scheduling while atomic",
       "BUG: scheduling while atomic in {func}", "stack",
       fallback=("BUG: scheduling while atomic",)),
    _p("bug", r"^BUG: using (?P<what>\w+)\(\) in preemptible",
       "BUG: using {what}() in preemptible code in {func}", "stack",
       skip=(r".*preempt.*",), fallback=("BUG: using {what}() in preemptible code",)),
    # --- page state and page-table accounting
    _p("bad-page", r"^BUG: Bad page (?P<what>state|map|cache)",
       "BUG: Bad page {what} in {func}", "stack", skip=_FREE_SKIP,
       fallback=("BUG: Bad page {what}",)),
    _p("bad-page", r"^BUG: Bad rss-counter state", "BUG: Bad rss-counter state", stack=False),
    _p("bad-page", r"^BUG: non-zero (?P<what>\w+) on freeing mm",
       "BUG: non-zero {what} on freeing mm", stack=False),
    # --- list and slab corruption
    _p("list-corruption", r"^kernel BUG at \S*lib/list_debug\.c",
       "BUG: corrupted list in {func}", *_FAULT, fallback=("BUG: corrupted list",)),
    *_warnings(r"lib/list_debug\.c", "list-corruption", "BUG: corrupted list in {func}"),
    # SLUB's own checks (SLUB_DEBUG): `BUG kmalloc-1k (Tainted: ...): Poison overwritten`. The
    # title names the caller that freed or allocated, not SLUB's checking functions, and no
    # object count (`Slab has 0 allocated objects but 1 are to be freed`).
    _p("slab-corruption", r"^BUG [\w-]+ \(.*\): (?P<slabmsg>.+)", "BUG: {slabmsg} in {func}",
       "stack", fallback=("BUG: {slabmsg}",), skip=_SLUB_SKIP),
    # --- kmemleak: `BUG: memory leak` (syzkaller) is refined by the object that follows
    _p("memory-leak", r"^unreferenced object 0x[0-9a-f]+", "memory leak in {func}", "stack",
       skip=_ALLOC_SKIP, fallback=("memory leak",)),
    _p("memory-leak", r"^BUG: memory leak$", "memory leak", weak=True, stack=False),
    # kmemleak's scan thread (or `echo scan`) found leaks; the objects themselves are listed in
    # /sys/kernel/debug/kmemleak, which the harness reads at the end of a run.
    _p("memory-leak", r"^kmemleak: \d+ new suspected memory leaks?\b",
       "kmemleak: new suspected memory leaks", stack=False),
    # --- kernel BUG() and traps
    _p("bug", r"^kernel BUG at \S*mm/usercopy\.c", "BUG: bad usercopy in {func}", "stack",
       skip=(r".*usercopy.*", r"_*check_\w+"), fallback=("BUG: bad usercopy",)),
    _p("bug", r"^kernel BUG at (?P<src>\S+?)!?$", "kernel BUG in {func}", *_FAULT,
       fallback=("kernel BUG at {src}",)),
    _p("gpf", r"^(?:Oops: )?general protection fault\b",
       "general protection fault in {func}", *_FAULT, fallback=("general protection fault",)),
    _p("gpf", r"^(?:Oops: )?stack segment: ", "stack segment fault in {func}", *_FAULT,
       fallback=("stack segment fault",)),
    _p("oops", r"^(?:Oops: )?divide error: ", "divide error in {func}", *_FAULT,
       fallback=("divide error",)),
    _p("oops", r"^(?:Oops: )?invalid opcode: ", "invalid opcode in {func}", *_FAULT,
       weak=True, fallback=("invalid opcode",)),
    _p("oops", r"^(?:Oops: )?int3: ", "int3 in {func}", *_FAULT, fallback=("int3",)),
    _p("oops", r"^Internal error: ", "Internal error in {func}", *_FAULT, weak=True,
       fallback=("Internal error",)),
    _p("oops", r"^Oops(?::| -| \[#\d+\])", "Oops in {func}", *_FAULT, weak=True,
       fallback=("Oops",)),
    # --- WARN(): special sources first
    *_warnings(r"lib/refcount\.c", "warning", "WARNING: refcount bug in {func}"),
    *_warnings(r"lib/debugobjects\.c", "warning", "WARNING: ODEBUG bug in {func}",
               skip=(r"debug_\w+", r".*timer.*", r".*work_.*", r".*rcu.*")),
    *_warnings(r"mm/usercopy\.c", "warning", "WARNING: bad usercopy in {func}",
               skip=(r".*usercopy.*", r"_*check_\w+")),
    *_warnings(r"kernel/locking/lockdep\.c", "lockdep", "WARNING: locking bug in {func}"),
    *_warnings("", "warning", "WARNING in {func}"),
    # --- anything else the kernel calls a BUG: titled by its message without what changes
    # from run to run (see _bug_message)
    _p("bug", r"^BUG: (?P<bugmsg>\S.*)", "BUG: {bugmsg}", stack=False),
)
# fmt: on

# Panics that only say an earlier report happened: without it the cause is missing.
_FOLLOW_ON_PANIC = re.compile(
    r"Fatal exception|panic_on_warn set|hung_task: blocked tasks|softlockup: hung tasks|"
    r"hard LOCKUP|Fatal hardware error|Oops - BUG"
)

# A report that found no end within this many lines is cut there.
MAX_REPORT_LINES = 1000
# Lines of one report are printed in one burst; a pause this long means unrelated output.
MAX_GAP_SECONDS = 2.0
# A panic this close after a report is that report's consequence (oops -> do_exit -> panic).
_FOLLOW_ON_LINES = 50
# A weak header or a repeated header merges into a report begun this close before it.
_MERGE_WINDOW = 20


# --------------------------------------------------------------------------------------------
# Header matching


def _is_ignored(key: str) -> bool:
    return any(p.search(key) for p in IGNORED)


def _match_header(key: str) -> tuple[Pattern, re.Match[str]] | None:
    if not key or not _may_be_header(key) or _is_ignored(key):
        return None
    for pattern in PATTERNS:
        if m := pattern.start.search(key):
            return pattern, m
    return None


# --------------------------------------------------------------------------------------------
# Report assembly


@dataclass
class _Frame:
    source: str  # header, rip, at, stack
    func: str
    in_irq: bool


@dataclass
class _Report:
    pattern: Pattern
    start: int  # first line, preamble included
    header: int  # the header line
    matches: list[re.Match[str]]
    lines: list[int] = field(default_factory=list)
    frames: list[_Frame] = field(default_factory=list)
    header_block: bool = True  # only header lines so far (syzbot repeats them per inline frame)
    in_trace: bool = False
    trace_frames: int = 0  # frame lines seen in the current call trace
    saw_task: bool = False
    trace_done: bool = False
    irq_depth: int = 0
    ended: bool = False  # reached its closing line or the end of its stack
    last_ts: float | None = None
    prefixed: bool = False


def _begin(pattern: Pattern, m: re.Match[str], i: int, lines: list[_Line], floor: int) -> _Report:
    start = i
    while start - 1 >= floor and start > i - 40 and _PREAMBLE.match(lines[start - 1].key):
        start -= 1
    # WARN(cond, fmt) prints its message between `cut here` and the WARNING line.
    for j in range(start - 1, max(floor, i - 6) - 1, -1):
        if _CUT_HERE.match(lines[j].key):
            start = j
            break
    rep = _Report(pattern, start, i, [m], prefixed=lines[i].prefixed, last_ts=lines[i].ts)
    rep.lines.extend(range(start, i + 1))
    _collect_header_frames(rep, m)
    rep.trace_done = not pattern.stack  # a stackless report ends with its header block
    return rep


def _collect_header_frames(rep: _Report, m: re.Match[str]) -> None:
    func = m.groupdict().get("func")
    if func:
        rep.frames.append(_Frame("header", func, False))


def _absorbs(rep: _Report, pattern: Pattern, i: int) -> bool:
    """Whether a header line at `i` belongs to the open report instead of starting one."""
    near = i - rep.header <= _MERGE_WINDOW
    if pattern.weak and near and not rep.trace_done:
        return True  # `Oops: 0000 [#1]` after `BUG: unable to handle page fault`
    if rep.pattern.weak and near and not rep.in_trace and not _has_stack(rep):
        return True  # `invalid opcode` first, `kernel BUG at` a line later: refine
    return pattern is rep.pattern and rep.header_block


def _has_stack(rep: _Report) -> bool:
    return any(f.source == "stack" for f in rep.frames)


def _absorb_header(rep: _Report, pattern: Pattern, m: re.Match[str], i: int) -> None:
    if rep.pattern.weak and not pattern.weak:
        rep.pattern = pattern
        rep.matches.insert(0, m)
        rep.trace_done = not pattern.stack
    else:
        rep.matches.append(m)
    rep.lines.append(i)
    _collect_header_frames(rep, m)


def _feed(rep: _Report, i: int, line: _Line) -> bool:
    """Add a non-header line to the open report; False if the report ended before it."""
    key = line.key
    foreign = rep.prefixed and not line.prefixed and bool(key)
    if line.ts is not None and rep.last_ts is not None and line.ts - rep.last_ts > MAX_GAP_SECONDS:
        return False
    if line.ts is not None:
        rep.last_ts = line.ts
    if rep.pattern.end is not None:
        rep.lines.append(i)
        _scan_frames(rep, line.msg)
        if rep.pattern.end.match(key):
            rep.ended = True
        return True
    if rep.trace_done and (foreign or not _REPORTISH.match(key)) and not _is_trace_line(key):
        return False
    if foreign and rep.in_trace and not _is_trace_line(key):
        return False  # userspace text inside a stack: the kernel stopped printing it
    rep.lines.append(i)
    if not foreign:
        _scan_frames(rep, line.msg)
    if _TERMINATOR.match(key):
        rep.ended = True
    return True


def _is_trace_line(key: str) -> bool:
    return bool(
        _FRAME.match(key) or _INLINE_FRAME.match(key) or _MARKER.match(key) or _REGISTERS.match(key)
    )


def _scan_frames(rep: _Report, msg: str) -> None:
    """Track the call trace state of a report line and collect title candidates."""
    key = msg.strip()
    rep.header_block = False
    if _STACK_START.match(key):
        rep.in_trace, rep.trace_done, rep.saw_task, rep.irq_depth = True, False, False, 0
        rep.trace_frames = 0
        return
    if (mk := _MARKER.match(key)) and rep.in_trace:
        _on_marker(rep, mk)
        return
    if m := _RIP.match(key):
        rep.frames.append(_Frame("rip", m.group("func"), rep.irq_depth > 0))
        return
    if m := _AT.search(key):
        rep.frames.append(_Frame("at", m.group("func"), False))
        return
    if rep.in_trace:
        m = _FRAME.match(msg)
        if m or _INLINE_FRAME.match(key):
            rep.trace_frames += 1
        if m and not m.group("q"):
            rep.frames.append(_Frame("stack", m.group("func"), rep.irq_depth > 0))
        elif not m and not rep.saw_task and not _is_trace_line(key):
            # Stacks without <TASK> markers (older kernels, arm64) end at the first line
            # that is no frame and no register dump.
            rep.in_trace, rep.trace_done = False, True


def _on_marker(rep: _Report, mk: re.Match[str]) -> None:
    ctx, closing = mk.group("ctx"), bool(mk.group("close"))
    if ctx == "TASK":
        rep.saw_task = True
        if closing:
            rep.in_trace, rep.trace_done = False, True
    elif ctx == "EOI" or closing:
        rep.irq_depth = max(0, rep.irq_depth - 1)
    else:
        rep.irq_depth += 1


# --------------------------------------------------------------------------------------------
# Titles


def _base_name(func: str) -> str:
    # `__mutex_lock.constprop.0`, `handle_userfault.cold`, `foo.isra.12`: one function.
    return func.split(".", 1)[0]


def _is_generic(pattern: Pattern, func: str) -> bool:
    return bool(GENERIC_FRAMES.match(func) or (pattern.skip_re and pattern.skip_re.match(func)))


def _pick_func(rep: _Report) -> str | None:
    pattern = rep.pattern
    names = [
        _base_name(f.func)
        for f in rep.frames
        if f.source in pattern.frames and not (pattern.skip_irq and f.in_irq)
    ]
    if pattern.stall:
        for k, name in enumerate(names):
            if _STALL_ANCHORS.match(name):
                above = [n for n in names[:k] if not _is_generic(pattern, n)]
                chosen = above[-1] if above else name
                return _SYSCALL_PREFIX.sub("", chosen)
    return next((n for n in names if not _is_generic(pattern, n)), None)


class _Strict(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


class _Lenient(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _render(template: str, values: dict[str, str], strict: bool = True) -> str | None:
    try:
        text = string.Formatter().vformat(template, (), (_Strict if strict else _Lenient)(values))
    except KeyError:
        return None
    return re.sub(r"\s+", " ", text).strip()


_VOLATILE = ((re.compile(r"0x[0-9a-fA-F]+"), "ADDR"), (re.compile(r"\b\d{3,}\b"), "NUM"))


def _normalize(msg: str) -> str:
    """Remove what changes from run to run (addresses, pids) from free-form messages."""
    for rx, repl in _VOLATILE:
        msg = rx.sub(repl, msg)
    return msg.strip().rstrip(".")


# What a free-form `BUG: ...` message carries that is not the bug: the detail after a colon
# or a comma (a task, a count, a subclass), bracketed and braced parts, CPU numbers and the
# task names and pids printed with them, addresses, numbers.
_BUG_VOLATILE = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"(?::\s|,\s).*$", ""),
        (r"\[[^\]]*\]|\{[^}]*\}|\([^)]*\)", " "),
        (r"\b(?:on\s+)?(?:CPU|cpu)\s*#?\s*\d+", " "),
        (r"\S+/\d+\b", " "),
        (r"\b(?:0x)?[0-9a-fA-F]{8,}\b|0x[0-9a-fA-F]+", " "),
        (r"\b\d+\b", " "),
    )
)


def _bug_message(msg: str) -> str:
    """`BUG: spinlock bad magic on CPU#1, kworker/1:2/57` -> `spinlock bad magic`: the same
    bug gets the same title on every run, CPU, task and address."""
    for rx, repl in _BUG_VOLATILE:
        msg = rx.sub(repl, msg)
    return re.sub(r"\s+", " ", msg).strip().rstrip("!.: ") or "corrupted"


def _title(rep: _Report, body: str) -> tuple[str, bool]:
    values: dict[str, str] = {}
    for m in rep.matches:
        for k, v in m.groupdict().items():
            if v and k == "bugmsg":
                values.setdefault(k, _bug_message(v))
            elif v and k == "slabmsg":
                values.setdefault(k, re.sub(r"\b\d+\b", "N", _normalize(v)))
            elif v and k != "func":
                values.setdefault(k, _normalize(v) if k in ("msg", "what") else v)
    if rep.pattern.extra and (x := rep.pattern.extra.search(body)):
        values.update({k: v for k, v in x.groupdict().items() if v})
    if func := _pick_func(rep):
        values["func"] = func
    for template in (rep.pattern.title, *rep.pattern.fallback):
        if (title := _render(template, values)) is not None:
            return title, template is not rep.pattern.title
    # Never reached for a consistent table (tests check every template), but a title must
    # not show raw {placeholders}.
    return _render(rep.pattern.title, values, strict=False) or rep.pattern.kind, True


# --------------------------------------------------------------------------------------------
# Parsing


def parse(text: str) -> list[Crash]:
    """Every kernel report in `text`, in order."""
    lines = [_split(raw) for raw in text.splitlines()]
    crashes: list[Crash] = []
    rep: _Report | None = None
    floor = 0  # preambles never reach into a previous report
    for i, line in enumerate(lines):
        hit = _match_header(line.key)
        if rep is not None and hit and not rep.ended and _absorbs(rep, hit[0], i):
            _absorb_header(rep, hit[0], hit[1], i)
            continue
        open_ = rep is not None and not rep.ended and len(rep.lines) < MAX_REPORT_LINES
        if open_ and not hit and _feed(rep, i, line):
            continue
        if rep is not None:
            crashes.append(_finish(rep, lines, crashes))
            floor = rep.lines[-1] + 1
            rep = None
        if hit:
            rep = _begin(hit[0], hit[1], i, lines, floor)
    if rep is not None:
        crashes.append(_finish(rep, lines, crashes))
    return crashes


def _finish(rep: _Report, lines: list[_Line], before: list[Crash]) -> Crash:
    end = rep.lines[-1] + 1
    body = "\n".join(lines[j].msg for j in rep.lines)
    title, corrupted = _title(rep, body)
    pattern = rep.pattern
    if not rep.ended:
        # Cut inside a stack (log ends, another report interleaves) or before its ===== line.
        in_stack = rep.in_trace and (rep.saw_task or rep.trace_frames == 0)
        corrupted = corrupted or in_stack or pattern.end is not None
    follow_on = bool(_FOLLOW_ON_PANIC.search(title))
    secondary = (
        pattern.kind == "panic"
        and bool(before)
        and (follow_on or rep.start - before[-1].end <= _FOLLOW_ON_LINES)
    )
    if pattern.kind == "panic" and follow_on and not before:
        corrupted = True  # the report that caused this panic is not in the text
    return Crash(
        kind=pattern.kind,
        title=title,
        text="\n".join(lines[j].raw for j in range(rep.start, end)),
        start=rep.start,
        end=end,
        corrupted=corrupted,
        secondary=secondary,
    )
