"""`uffd-harness kselftest`: the tree's userfaultfd selftests in a guest, one record per
case, then the agent workloads that check the same behaviour, in the same guest, and the
side-by-side table.

Phases per selftest run: guest (booted once, replaced when it died or hung), hugepages
(run_vmtests.sh's pool check), run (one command, --guest-timeout; a hang is cut there,
its SysRq dump kept, the guest replaced), collect (output -> cases, console slice ->
crashes, the known-issues list -> outcome).
"""

import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import HarnessError
from harness.agent.session import AgentError, AgentSession, run_with_dmesg
from harness.events import Sink, ignore
from harness.guest.guest import Guest, GuestHang, guest_from_settings
from harness.kselftest.parse import PARSERS, Case, interpret, stress_faults
from harness.kselftest.peers import Row, agent_cases, find_peer, load_peers, make_row
from harness.kselftest.tree import HUGETLBFS, Invocation, Layout, half_size_mb
from harness.results.hardware import hardware_fingerprint
from harness.results.record import TestRecord
from harness.results.rundir import RunDir
from harness.verdict.crashlog import parse as parse_crashes
from harness.verdict.known_issues import KnownIssue
from harness.verdict.outcomes import verdict

REMOTE_DIR = "/tmp/kselftest"
#: Per selftest run (one binary on one memory type), per accelerator, without --guest-timeout.
RUN_TIMEOUT = {"kvm": 300.0, "tcg": 900.0}
AGENT_TIMEOUT = {"kvm": 120.0, "tcg": 300.0}
#: The workload name a selftest case has in the known-issues list.
KNOWN_PREFIX = "kselftest"
PROBE = (
    "echo cpus $(nproc); grep -E '^(Hugepagesize|HugePages_Free):' /proc/meminfo; "
    "echo pool $(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)"
)


@dataclass
class GuestFacts:
    nr_cpus: int
    hpage_kb: int  # 0: no hugetlb in the guest kernel
    free_pages: int
    nr_hugepages: int


def parse_probe(text: str) -> GuestFacts:
    def num(label: str) -> int:
        m = re.search(rf"^{label}:?\s+(\d+)", text, re.M)
        return int(m.group(1)) if m else 0

    cpus = num("cpus")
    if not cpus:
        raise HarnessError(f"cannot read the guest's CPU count from {text!r}")
    return GuestFacts(cpus, num("Hugepagesize"), num("HugePages_Free"), num("pool"))


def hugepage_shortage(inv: Invocation, facts: GuestFacts, half_mb: int) -> str | None:
    """Why a hugetlb run cannot run in this guest (after run_vmtests.sh's attempt to grow
    the pool), or None."""
    if not inv.hugetlb:
        return None
    if facts.hpage_kb <= 0:
        return "the guest kernel has no hugetlb pages (no Hugepagesize in /proc/meminfo)"
    need = half_mb * 2 * 1024 // facts.hpage_kb
    if facts.free_pages < need:
        return (
            f"needs {need} free {facts.hpage_kb // 1024} MiB hugepages ({half_mb} MiB twice, "
            f"as run_vmtests.sh sizes it for {facts.nr_cpus} CPUs); the guest has "
            f"{facts.free_pages} free: give the guest --hugepages 2M:{need} (and --mem to match)"
        )
    return None


def remote_command(argv: list[str], scratch: str | None = None, workdir: str = REMOTE_DIR) -> str:
    """The guest command for one selftest run: stdout and stderr merged (the parsers read
    them in the order printed), then run_vmtests.sh's `rm -f "$mnt"/uffd-test` when the
    run made that file; the command's exit code is the selftest's."""
    cmd = f"cd {shlex.quote(workdir)} && {shlex.join(argv)} 2>&1"
    if scratch:
        cmd += f"; rc=$?; rm -f {shlex.quote(scratch)}; (exit $rc)"
    return cmd


def selftest_result(binary: str, mem: str, case: Case) -> dict:
    """A case as the known-issues verdict reads an agent result: the case is its one check."""
    # KTAP's XFAIL is the test's own expected failure: kselftest counts it as no failure.
    status = {"pass": "pass", "fail": "fail", "skip": "skip", "xfail": "pass"}[case.status]
    checks = [{"name": case.name, "ok": status != "fail", "detail": case.reason}]
    return {
        "workload": f"{KNOWN_PREFIX}:{binary}:{case.name}",
        "mem": mem,
        "status": status,
        "reason": case.reason,
        "checks": checks,
    }


@dataclass
class Options:
    settings: dict
    root: Path
    binaries: Path  # the built selftests
    mem_types: tuple[str, ...] = ()  # empty: all
    run_agent: bool = True
    say: Callable[[str, str], None] = lambda phase, msg: None
    events: Sink = ignore
    reproduce: str = ""  # the command line that reruns this, for failed records


@dataclass
class Outcome:
    records: list[TestRecord] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    session_crashes: list[dict] = field(default_factory=list)


class KselftestRun:
    def __init__(self, layout: Layout, opts: Options, run: RunDir, issues: list[KnownIssue]):
        self.layout, self.opts, self.run, self.issues = layout, opts, run, issues
        self.guest: Guest | None = None
        self.agent: AgentSession | None = None
        self.facts: GuestFacts | None = None
        self.boots = 0
        self.attributed = 0  # the console of the current guest is examined up to here
        self.session_crashes: list[dict] = []
        self.config: dict | None = None

    # -- guests ----------------------------------------------------------------------------

    def _timeout(self, table: dict[str, float]) -> float:
        limit = self.opts.settings.get("guest_timeout")
        assert self.guest
        return float(limit) if limit is not None else table[self.guest.spec.accel]

    def get_guest(self) -> Guest:
        if self.guest and self.guest.reachable():
            return self.guest
        self.discard()
        self.boots += 1
        log = self.run.root / f"console-kselftest-{self.boots}.log"
        guest = guest_from_settings(self.opts.settings, console_log=log, events=self.opts.events)
        try:
            guest.start()
        except HarnessError:
            guest.cleanup()
            self._examine(guest, 0, None, "in a boot that failed")
            raise
        self.guest, self.attributed = guest, 0
        if "hardware" not in self.run.meta:  # a suite run before us (--with-kselftest) has it
            kernel = {"release": guest.kernel.release, "version": guest.kernel.version}
            self.run.meta["kernel"] = kernel
            self.run.meta["hardware"] = hardware_fingerprint(
                guest.spec.accel, guest.accel_reason, guest.spec.cpu_model, kernel
            )
        if self.config is None:
            from harness.kernel.info import kernel_config

            self.config = kernel_config(guest.kernel)
        self.attributed = self._examine(guest, 0, guest.console.offset(), "at boot")
        guest.run("dmesg -c >/dev/null; mkdir -p " + REMOTE_DIR, timeout=60)
        for b in self.layout.binaries:
            guest.push(self.opts.binaries / b.name, f"{REMOTE_DIR}/{b.name}", 0o755)
        self.facts = parse_probe(guest.run(PROBE, timeout=60).stdout.decode(errors="replace"))
        return guest

    def _examine(self, guest: Guest, start: int, end: int | None, phase: str) -> int:
        end = guest.console.offset() if end is None else end
        if end > start:
            for c in parse_crashes(guest.console.read(start, end)):
                self.session_crashes.append(
                    {"kind": c.kind, "title": c.title, "text": c.text, "phase": phase}
                    | {"console": guest.console.path.name}
                )
        return max(start, end)

    def begin(self, guest: Guest) -> int:
        """A run's console start; what the console printed since the last run (pushes,
        the pool check, the guest's own background) is examined as a gap."""
        start = guest.console.offset()
        if guest is self.guest and start > self.attributed:
            self.attributed = self._examine(guest, self.attributed, start, "between tests")
        return start

    def discard(self) -> None:
        if self.guest:
            self.guest.stop()
            self._examine(self.guest, self.attributed, None, "between tests")
            self.guest.cleanup()
        self.guest, self.agent = None, None

    # -- selftests ---------------------------------------------------------------------------

    def half_mb(self) -> int:
        f = self.facts
        assert f
        return half_size_mb(self.layout.script_text, f.nr_cpus, f.hpage_kb, f.free_pages)

    def grow_pool(self, inv: Invocation) -> None:
        """run_vmtests.sh's own step: raise nr_hugepages to what the run needs."""
        assert self.guest and self.facts
        f = self.facts
        need = self.half_mb() * 2 * 1024 // max(f.hpage_kb, 1)
        if inv.hugetlb and f.hpage_kb > 0 and f.free_pages < need:
            target = f.nr_hugepages + need - f.free_pages
            self.guest.run(
                f"echo 3 > /proc/sys/vm/drop_caches; echo {target} > /proc/sys/vm/nr_hugepages",
                timeout=60,
            )
            out = self.guest.run(PROBE, timeout=60).stdout.decode(errors="replace")
            self.facts = parse_probe(out)

    def run_invocation(self, inv: Invocation) -> list[TestRecord]:
        guest = self.get_guest()
        self.grow_pool(inv)
        assert self.facts
        half = self.half_mb()
        argv = inv.argv(half)
        label = f"{inv.binary}-{inv.mem}" if inv.mem else inv.binary
        short = hugepage_shortage(inv, self.facts, half)
        if short:
            self.opts.say("kselftest", f"{' '.join(argv)}: skipped: {short}")
            cases = [Case(name, "skip", short) for name in inv.expected or ("(whole program)",)]
            return self._records(inv, cases, argv, None, 0.0, "", None, [])
        self.opts.say("kselftest", f"running {' '.join(argv)}")
        scratch = f"{HUGETLBFS}/uffd-test" if "{mnt}" in " ".join(inv.args) else None
        cmd = remote_command(argv, scratch)
        start = self.begin(guest)
        t0 = time.monotonic()
        hang, dump, dmesg, exit_code = "", "", "", None
        try:
            res, output, _, dmesg = run_with_dmesg(guest, cmd, self._timeout(RUN_TIMEOUT))
            exit_code = res.exit_code
        except GuestHang as e:
            hang = f"hang: no exit within {e.timeout:g} s"
            output, dump = e.partial, e.dump
        except HarnessError as e:
            # The guest died under it (a panic) or stopped answering: its console says why.
            hang, output = f"the guest stopped answering ({e})", ""
        duration = time.monotonic() - t0
        if not guest.alive():
            guest.wait_exit(10.0)
        end = guest.console.offset()
        console = guest.console.read(start, end)
        self.attributed = max(self.attributed, end)
        logs = self.run.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"kselftest-{label}.output.txt").write_text(output)
        (logs / f"kselftest-{label}.console.log").write_text(console)
        (logs / f"kselftest-{label}.dmesg.txt").write_text(dmesg)
        if dump:
            (logs / f"kselftest-{label}.hang-dump.txt").write_text(dump)
        if hang or not guest.alive():
            self.discard()  # the next run gets a new guest
        crashes = parse_crashes(console)
        parsed = PARSERS[inv.parser](output)
        cases = interpret(parsed, exit_code, output, inv.expected, hang)
        done = f"exit {exit_code}" if exit_code is not None else hang
        self.opts.say("kselftest", f"{' '.join(argv)}: {done} after {duration:.1f} s")
        return self._records(inv, cases, argv, exit_code, duration, output, label, crashes)

    def _records(
        self,
        inv: Invocation,
        cases: list[Case],
        argv: list[str],
        exit_code: int | None,
        duration: float,
        output: str,
        label: str | None,
        crashes: list,
    ) -> list[TestRecord]:
        """One record per case; `label` names the run's log files (None: it did not run)."""
        records = []
        logs = f"logs/kselftest-{label}" if label else None
        reproduce = self.opts.reproduce
        if reproduce and inv.mem:
            reproduce += f" --mem-types {shlex.quote(inv.mem)}"
        release = self.run.meta.get("kernel", {}).get("release", "")
        # A crash fails the case that was running when the program stopped: the last one
        # that did not pass, else the last one.
        blamed = None
        if crashes and cases:
            blamed = next((c for c in reversed(cases) if c.status == "fail"), cases[-1])
        for case in cases:
            mem = inv.mem or case.mem or "-"
            agent_mem = self.layout.agent_mem(mem) or wp_mremap_mem(case.name)
            v = verdict(selftest_result(inv.binary, mem, case), self.issues, release, self.config)
            # The selftest's own words; the known-issues list's when it explains the case.
            outcome = v.outcome
            reason = f"{v.reason}: {case.reason}" if v.known else (case.reason or v.reason)
            own = []
            if case is blamed:
                own = [{"kind": c.kind, "title": c.title, "text": c.text} for c in crashes]
                outcome = "failed"
                reason = "kernel crash: " + "; ".join(c.title for c in crashes)
            records.append(
                TestRecord(
                    name=f"kselftest[{inv.binary}:{mem}:{case.name}]",
                    outcome=outcome,
                    duration=duration / max(len(cases), 1),
                    reason=reason,
                    crashes=own,
                    log_slice=f"{logs}.console.log" if logs else None,
                    dmesg=f"{logs}.dmesg.txt" if logs else None,
                    reproduce=reproduce or None,
                    start_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    selftest={
                        "binary": inv.binary,
                        "mem": mem,
                        "agent_mem": agent_mem,
                        "case": case.name,
                        "status": case.status,
                        "reason": case.reason,
                        "argv": argv,
                        "exit_code": exit_code,
                        "output": case.output[-4000:],
                        "output_file": f"{logs}.output.txt" if logs else None,
                        **(stress_figures(case, duration) if case.name == "stress" else {}),
                    },
                )
            )
        return records

    # -- agent peers ---------------------------------------------------------------------------

    def run_agent_case(self, workload: str, mem: str) -> TestRecord:
        from harness.agent.build import build_agent

        name = f"agent[{workload}-{mem}]"
        t0 = time.monotonic()
        try:
            guest = self.get_guest()
            if self.agent is None or self.agent.guest is not guest:
                self.agent = AgentSession(guest, build_agent())
            start = self.begin(guest)
            res = self.agent.run(workload, mem, self._timeout(AGENT_TIMEOUT))
        except GuestHang as e:
            self.discard()
            return TestRecord(name, "failed", time.monotonic() - t0, f"hang: {e}")
        except (AgentError, HarnessError) as e:
            self.discard()
            return TestRecord(name, "error", time.monotonic() - t0, str(e))
        end = guest.console.offset()
        self.attributed = max(self.attributed, end)
        console = guest.console.read(start, end)
        crashes = parse_crashes(console)
        release = self.run.meta.get("kernel", {}).get("release", "")
        v = verdict(res.data, self.issues, release, self.config)  # type: ignore[arg-type]
        outcome, reason = v.outcome, v.reason
        if crashes:
            outcome, reason = "failed", "kernel crash: " + "; ".join(c.title for c in crashes)
        logs = self.run.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        base = f"logs/agent-{workload}-{mem}"
        (self.run.root / f"{base}.console.log").write_text(console)
        (self.run.root / f"{base}.dmesg.txt").write_text(self.agent.take_dmesg() or "")
        return TestRecord(
            name,
            outcome,
            res.duration,
            reason,
            agent=res.data,  # type: ignore[arg-type]
            crashes=[{"kind": c.kind, "title": c.title, "text": c.text} for c in crashes],
            log_slice=f"{base}.console.log",
            dmesg=f"{base}.dmesg.txt",
            start_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )


def stress_figures(case: Case, run_seconds: float) -> dict:
    """The stress part's faults by kind and their rate over the binary's whole run (6.1's
    binary runs its other tests after the stress part: a lower bound there; the newer
    uffd-stress runs nothing else), a peer figure for the agent's `stress` workload."""
    faults = stress_faults(case.output)
    total = sum(faults.values())
    rate = round(total / run_seconds, 1) if run_seconds > 0 else None
    return {"faults": faults, "faults_per_second": rate}


def wp_mremap_mem(case: str) -> str | None:
    """The agent memory type of an uffd-wp-mremap case, from its `[RUN]` line's parameters."""
    params = dict(re.findall(r"(\w+)=(\w+)", case))
    if not params:
        return None
    private = params.get("private") == "true"
    if params.get("hugetlb") == "true":
        return "hugetlb-private" if private else "hugetlb"
    if params.get("size", "4096") != "4096":
        return "anon-thp" if private else "shmem"
    return "anon" if private else "shmem"


def selected(layout: Layout, mem_types: tuple[str, ...]) -> list[Invocation]:
    """The runs to make: all, or those of the given memory types (the binary's own names;
    runs without a memory type, uffd-unit-tests and uffd-wp-mremap, go with any)."""
    if not mem_types:
        return list(layout.invocations)
    return [i for i in layout.invocations if not i.mem or i.mem in mem_types]


def agent_outcomes(records: list[TestRecord]) -> dict[tuple[str, str], str]:
    """(workload, memory type) -> outcome of the agent cases among `records` (a suite run's),
    so that the table can use them instead of running the peers again."""
    return {
        (r.agent["workload"], r.agent["mem"]): r.outcome
        for r in records
        if r.agent and r.agent.get("workload") and r.agent.get("mem")
    }


def run_kselftests(
    layout: Layout,
    opts: Options,
    run: RunDir,
    issues: list[KnownIssue],
    known: dict[tuple[str, str], str] | None = None,
) -> Outcome:
    """Every selected selftest run, then the agent peers of their cases (those in `known`
    are not run again), then the table; the run directory is flushed however it ends."""
    ks = KselftestRun(layout, opts, run, issues)
    out = Outcome()
    try:
        for inv in selected(layout, opts.mem_types):
            for r in ks.run_invocation(inv):
                out.records.append(r)
                run.add(r)
        peers = load_peers()
        wanted: dict[tuple[str, str], None] = {}
        per_record = []
        for r in list(out.records):
            st = r.selftest or {}
            peer = find_peer(peers, st["binary"], st["case"])
            cases = agent_cases(peer, st.get("agent_mem"))
            per_record.append((r, cases))
            wanted.update(dict.fromkeys(cases))
        outcomes = dict(known or {})
        todo = [c for c in wanted if c not in outcomes]
        if opts.run_agent and todo:
            from harness.agent.build import agent_cases as known_cases

            valid = set(known_cases())
            for workload, mem in todo:
                if (workload, mem) not in valid:
                    outcomes[(workload, mem)] = "no such case"
                    continue
                opts.say("agent", f"peer {workload} --mem {mem}")
                rec = ks.run_agent_case(workload, mem)
                outcomes[(workload, mem)] = rec.outcome
                out.records.append(rec)
                run.add(rec)
        for r, cases in per_record:
            st = r.selftest or {}
            title = f"{st['binary']} {st['mem']}: {st['case']}"
            agent = [(f"{w}@{m}", outcomes.get((w, m), "not run")) for w, m in cases]
            out.rows.append(make_row(title, r.outcome, agent))
    finally:
        ks.discard()
        out.session_crashes = ks.session_crashes
        if ks.session_crashes:
            run.meta.setdefault("session_crashes", []).extend(ks.session_crashes)
        run.meta["side_by_side"] = [asdict(r) for r in out.rows]
        run.flush()
    return out


def write_table(root: Path, rows: list[Row], text: str) -> None:
    from harness.host.cache import publish
    from harness.kselftest.peers import sort_rows

    publish(root / "side-by-side.txt", text)
    publish(root / "side-by-side.json", json.dumps([asdict(r) for r in sort_rows(rows)], indent=1))


def stress_invocation(layout: Layout, agent_mem: str) -> Invocation | None:
    """The tree's stress run on the agent's memory type `agent_mem` (6.1's `userfaultfd
    hugetlb_shared ...` for the agent's hugetlb), if it has one."""
    for inv in layout.invocations:
        if "stress" in inv.expected and layout.agent_mem(inv.mem) == agent_mem:
            return inv
    return None


def selftest_stress(
    guest: Guest, layout: Layout, binaries: Path, agent_mem: str, timeout: float
) -> dict | None:
    """The selftests' stress part on a running guest, as a peer of the agent's `stress`
    workload (`uffd-harness bench --kselftest-src`): its faults by kind, the binary's wall
    time and their rate (a lower bound for 6.1's binary, which runs its other tests in
    the same time). None when the tree has no stress run on that memory type."""
    inv = stress_invocation(layout, agent_mem)
    if inv is None:
        return None
    guest.run("mkdir -p " + REMOTE_DIR, timeout=60)
    guest.push(binaries / inv.binary, f"{REMOTE_DIR}/{inv.binary}", 0o755)
    f = parse_probe(guest.run(PROBE, timeout=60).stdout.decode(errors="replace"))
    argv = inv.argv(half_size_mb(layout.script_text, f.nr_cpus, f.hpage_kb, f.free_pages))
    scratch = f"{HUGETLBFS}/uffd-test" if "{mnt}" in " ".join(inv.args) else None
    t0 = time.monotonic()
    res = guest.run(remote_command(argv, scratch), timeout)
    seconds = time.monotonic() - t0
    output = res.stdout.decode(errors="replace")
    faults = stress_faults(output)
    return {
        "argv": argv,
        "exit_code": res.exit_code,
        "seconds": round(seconds, 2),
        "faults": faults,
        "faults_per_second": round(sum(faults.values()) / seconds, 1) if seconds > 0 else None,
        "lower_bound": inv.parser == "legacy" and len(inv.expected) > 1,
    }
