"""pytest plugin: guests as fixtures, per-test kernel logs, crashes fail the test, results.

A session opts in (the suite's conftest, tests/conftest.py, `-p harness.suite.plugin`);
the options it reads are added to every session by harness.suite.options.
"""

import re
import shlex
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from harness import HarnessError
from harness.agent.session import AgentSession
from harness.events import Event
from harness.guest.guest import Guest, GuestHang, guest_from_settings
from harness.guest.ssh import CommandTimeout
from harness.kernel.image import KernelImage, default_kernel, inspect_kernel
from harness.results.formats import crash_place
from harness.results.hardware import hardware_fingerprint
from harness.results.provenance import provenance
from harness.results.record import TestRecord, count_line, counts
from harness.results.rundir import RunDir, lock_run_dir, new_run_id, signals_deferred
from harness.settings.merge import resolve
from harness.settings.schema import GUEST, as_flags
from harness.suite import hooks
from harness.verdict.outcomes import NO_USERFAULTFD

#: Boots that fail in a row before the rest of the run is marked not run.
MAX_FAILED_BOOTS = 2
#: Default per-test limit for a guest command, per accelerator.
TEST_TIMEOUT = {"kvm": 120.0, "tcg": 300.0}

_SLICE = pytest.StashKey[tuple]()  # (guest, console offset at the test's start, pool)
_RUN = pytest.StashKey[RunDir]()
_LOCK = pytest.StashKey[IO[str]]()
_SETTINGS = pytest.StashKey[dict]()
#: Kernel reports found on the console outside every test's slice (at boot, between tests,
#: after the last test, in a boot that failed), and the leaks kmemleak lists at the end.
_SESSION_CRASHES = pytest.StashKey[list]()
#: Where a worker sends its session crashes to the controller (xdist's workeroutput).
_WORKEROUTPUT_KEY = "uffd_session_crashes"
#: The guest command that lists kmemleak's leaks at the end of a run, on kernels that have
#: it: two scans (an object must be unreferenced for 5 s before one reports it), then the
#: list. Nothing at all on kernels without CONFIG_DEBUG_KMEMLEAK (or with it disabled).
KMEMLEAK_COMMAND = (
    "d=/sys/kernel/debug; [ -e $d/kmemleak ] || mount -t debugfs debugfs $d 2>/dev/null; "
    "[ -w $d/kmemleak ] || exit 0; echo scan > $d/kmemleak 2>/dev/null || exit 0; sleep 6; "
    "echo scan > $d/kmemleak; cat $d/kmemleak"
)


def session_settings(config: pytest.Config) -> dict[str, object]:
    """The session's settings (defaults, --guest-config, flags), checked once at configure
    time."""
    return config.stash[_SETTINGS]


def session_kernel(config: pytest.Config) -> KernelImage:
    """The kernel guest tests will boot, known without booting it (for collection)."""
    kernel = session_settings(config).get("kernel")
    return inspect_kernel(Path(str(kernel))) if kernel else default_kernel()


def reproduce_command(settings: dict[str, object], kernel: Path, agent_args: list[str]) -> str:
    """A command line that reruns one agent case in a guest like this session's; every
    guest setting is spelled out so the line means the same after defaults change."""
    flags = as_flags({**settings, "kernel": str(kernel)}, "cli", GUEST)
    return shlex.join(["uffd-harness", "agent", *flags, "--", *agent_args])


def _worker(config: pytest.Config) -> str:
    return getattr(config, "workerinput", {}).get("workerid", "main")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guest: boots a real QEMU guest")
    config.stash[_SESSION_CRASHES] = []
    try:
        config.stash[_SETTINGS] = resolve(config.getoption, "pytest")
    except HarnessError as e:
        # pytest's own way to refuse a bad option: one "ERROR:" line, exit code 4.
        raise pytest.UsageError(f"uffd-harness: {e}") from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[_RUN] = RunDir(Path(workerinput["uffd_results"]), {}, workerinput["uffd_run"])
        return
    run_id = new_run_id()
    given = config.stash[_SETTINGS]["results"]
    if given:
        # A default directory is this run's own (its name holds the pid); a given one may
        # be another run's.
        try:
            config.stash[_LOCK] = lock_run_dir(Path(given))
        except HarnessError as e:
            raise pytest.UsageError(f"uffd-harness: {e}") from None
    root = given or Path(config.rootpath) / "results" / run_id
    config.stash[_RUN] = RunDir(Path(root), {"run_id": run_id, "harness": provenance()}, run_id)
    recorder = ResultsRecorder(config.stash[_RUN], config.stash[_SESSION_CRASHES])
    config.pluginmanager.register(recorder, "uffd-harness-results")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # pytest-xdist: workers share the run directory
    run = node.config.stash[_RUN]
    node.workerinput["uffd_results"] = str(run.root)
    node.workerinput["uffd_run"] = run.run_id


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker's session crashes go to the controller with its workeroutput: when the
    session ends (the guest pool closed, its console's unattributed rest examined) there
    is no test report left to carry them. trylast: after pytest's own sessionfinish, which
    tears the session fixtures down when the run was interrupted."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_WORKEROUTPUT_KEY] = list(session.config.stash.get(_SESSION_CRASHES, []))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # pytest-xdist, in the controller
    """A worker's session crashes, received with its workeroutput. A worker that died has
    none to send (its last console lines are kept with its test: see ResultsRecorder)."""
    crashes = getattr(node, "workeroutput", None) or {}
    node.config.stash[_SESSION_CRASHES].extend(crashes.get(_WORKEROUTPUT_KEY, []))


def _session_crash(
    c, console: str, phase: str, after: str = "", before: str = "", during: str = ""
) -> dict:
    """A crash record that belongs to no test: where on which console it was found."""
    record = {
        "kind": c.kind,
        "title": c.title,
        "text": c.text,
        "console": console,
        "phase": phase,
        "after": after,
        "before": before,
    }
    if during:
        record["during"] = during
    return record


class GuestPool:
    """One guest per pytest process (per xdist worker), replaced when it has died."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.settings = session_settings(config)
        self.run: RunDir = config.stash[_RUN]
        self.worker = _worker(config)
        self.guest: Guest | None = None
        self.agent: AgentSession | None = None
        self.boots = 0
        #: Every kernel report outside a test's slice (shared with the results recorder, or
        #: sent to the controller by a worker).
        self.session_crashes: list[dict] = config.stash[_SESSION_CRASHES]
        #: The current guest's console is examined up to this byte offset: every byte
        #: before it belongs to its boot, to a test's slice, or to a gap already parsed.
        self.attributed = 0
        #: The last test whose slice was cut from the current guest's console.
        self.last_test = ""
        self.hardware_sent = False
        self.pending_meta: dict = {}
        self.timeout: float | None = None
        #: Errors of the boots that failed since the last one that worked.
        self.failed_boots: list[str] = []
        self.configs: dict[Path, dict[str, str] | None] = {}

    def kernel_config(self, kernel: KernelImage) -> dict[str, str] | None:
        """The booted kernel's config (None: not found), read once per kernel."""
        if kernel.path not in self.configs:
            from harness.kernel.info import kernel_config

            self.configs[kernel.path] = kernel_config(kernel)
        return self.configs[kernel.path]

    def _event(self, event: Event) -> None:
        self.config.hook.pytest_uffd_event(event=event)

    def _healthy(self) -> bool:
        g = self.guest
        return bool(g and g.reachable())

    def get(self) -> Guest:
        if len(self.failed_boots) >= MAX_FAILED_BOOTS:
            # A kernel that cannot boot would cost a boot timeout per case: the rest of the
            # run is not run, and says why (an error, never a skip).
            raise HarnessError(
                f"not run: the guest failed to boot {len(self.failed_boots)} times in a row; "
                f"the last boot said: {self.failed_boots[-1].splitlines()[0]}"
            )
        if self.guest and not self._healthy():
            self.discard()
        if self.guest is None:
            self.boots += 1
            log = self.run.root / f"console-{self.worker}-{self.boots}.log"
            from harness.agent.build import build_agent

            guest = guest_from_settings(
                self.settings, console_log=log, events=self._event, preload=(build_agent(),)
            )
            limit = self.settings["guest_timeout"]
            self.timeout = TEST_TIMEOUT[guest.spec.accel] if limit is None else float(limit)
            try:
                guest.start()
            except HarnessError as e:
                guest.cleanup()
                self.failed_boots.append(str(e))
                # A kernel that crashed while booting: its whole console is the boot's.
                self._examine(guest, 0, None, "in a boot that failed")
                raise
            self.failed_boots = []
            self.guest = guest
            self.last_test = ""
            self.attributed = 0
            if self.settings["gcov"]:
                from harness.guest import gcov

                gcov.reset(guest)  # the suite's coverage, not the boot's
            self._record_hardware(guest)
            # The boot's console up to now; what follows belongs to a test or a gap.
            self.attributed = self._examine(guest, 0, guest.console.offset(), "at boot")
            # The boot's ring buffer goes to its own file and is cleared, so each test's
            # dmesg holds only what was written while it ran.
            boot_dmesg = guest.run("dmesg -c", timeout=60).stdout
            (self.run.root / f"dmesg-boot-{self.worker}-{self.boots}.txt").write_bytes(boot_dmesg)
        return self.guest

    def _examine(
        self, guest: Guest, start: int, end: int | None, phase: str, before: str = ""
    ) -> int:
        """Parse console bytes [start, end) of `guest` (to its end when `end` is None) as
        belonging to no test; returns the offset examined up to."""
        from harness.verdict.crashlog import parse

        if end is None:
            end = guest.console.offset()
        if end > start:
            name = guest.console.path.name
            after = self.last_test if phase != "at boot" else ""
            self.session_crashes += [
                _session_crash(c, name, phase, after, before)
                for c in parse(guest.console.read(start, end))
            ]
        return max(start, end)

    def begin_test(self, guest: Guest, nodeid: str) -> int:
        """The console offset where a test's slice starts; what the console printed since
        the last slice (a teardown, a setup, the guest's own background) is examined as a
        gap between tests."""
        start = guest.console.offset()
        if guest is self.guest and start > self.attributed:
            name = nodeid.split("::", 1)[-1]
            self.attributed = self._examine(guest, self.attributed, start, "between tests", name)
        return start

    def end_test(self, guest: Guest, end: int, nodeid: str) -> None:
        """A test's slice has been cut up to `end`."""
        if guest is self.guest:
            self.attributed = max(self.attributed, end)
            self.last_test = nodeid.split("::", 1)[-1]

    def _record_hardware(self, guest: Guest) -> None:
        """Sent with the next report: under xdist only the controller writes results."""
        if self.hardware_sent:
            return
        self.hardware_sent = True
        kernel = {
            "release": guest.kernel.release,
            "version": guest.kernel.version,
            "path": str(guest.kernel.path),
        }
        hardware = hardware_fingerprint(
            guest.spec.accel, guest.accel_reason, guest.spec.cpu_model, kernel
        )
        # Whether the swap workloads had swap, and which: zram, a virtio-blk disk, none.
        hardware["guest_swap"] = guest.swap.explain() if guest.swap else "unknown"
        # A run driven over the console channel says so, and why (no SSH, or asked for).
        hardware["guest_channel"] = (
            f"console: {guest.console_why}" if guest.driven_by == "console" else "ssh"
        )
        self.pending_meta = {"hardware": hardware, "kernel": kernel}

    def get_agent(self) -> AgentSession:
        guest = self.get()
        if self.agent is None or self.agent.guest is not guest:
            from harness.agent.build import build_agent

            # Built (and cached) before the guest booted: its copy is in the initramfs.
            self.agent = AgentSession(guest, build_agent())
        return self.agent

    def discard(self, phase: str = "between tests") -> None:
        if self.guest:
            if self._healthy():
                # Every guest's leaks, before it goes (with --fresh-guest, one per test).
                self._kmemleak()
            self.guest.stop()
            # What the console printed after the last slice, up to the guest's very end.
            self._examine(self.guest, self.attributed, None, phase)
            self.guest.cleanup()  # its private work dir; the console log is in the results
        self.guest = None
        self.agent = None

    def close(self) -> None:
        self.discard("after the last test")

    def _kmemleak(self) -> None:
        """kmemleak's list of leaks before a guest stops, at the end of the run or when it is
        replaced (kernels with kmemleak only), each leak a session crash: a leak belongs to
        no one test."""
        from harness.verdict.crashlog import parse

        guest = self.guest
        assert guest is not None
        try:
            out = guest.run(KMEMLEAK_COMMAND, timeout=120).stdout.decode(errors="replace")
        except HarnessError as e:
            # The guest's console is still examined to its end by discard().
            out = f"(kmemleak not read: {e})\n"
        name = f"kmemleak-{self.worker}-{self.boots}.txt"
        if out.strip():
            (self.run.root / name).write_text(out)
        self.session_crashes += [
            _session_crash(c, name, "kmemleak before the guest stopped", self.last_test)
            for c in parse(out)
        ]


@pytest.fixture(scope="session")
def guest_pool(request: pytest.FixtureRequest) -> Iterator[GuestPool]:
    pool = GuestPool(request.config)
    yield pool
    pool.close()


@pytest.fixture
def guest(guest_pool: GuestPool, request: pytest.FixtureRequest) -> Iterator[Guest]:
    """A running guest; the test's console slice is cut from its log afterwards."""
    try:
        g = guest_pool.get()
    except HarnessError as e:
        pytest.fail(f"guest did not start: {e}", pytrace=False)
    request.node.stash[_SLICE] = (g, guest_pool.begin_test(g, request.node.nodeid), guest_pool)
    yield g
    if guest_pool.settings["fresh_guest"]:
        guest_pool.discard()


@pytest.fixture
def agent(guest: Guest, guest_pool: GuestPool) -> AgentSession:
    try:
        return guest_pool.get_agent()
    except HarnessError as e:
        pytest.fail(f"agent not ready: {e}", pytrace=False)


@pytest.fixture
def features(agent: AgentSession) -> dict:
    return agent.features()


@pytest.fixture
def guest_timeout(guest_pool: GuestPool, guest: Guest) -> float:
    assert guest_pool.timeout
    return guest_pool.timeout


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", nodeid.split("::", 1)[-1])[:150]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if item.get_closest_marker("guest"):
        report.user_properties.append(("uffd_guest", True))
    if report.when != "call" or _SLICE not in item.stash:
        return
    try:
        _attach_evidence(item, call, report)
    except Exception as e:
        # An exception here would abort the whole session (INTERNALERROR) and lose every
        # later test: it fails this one instead, saying what broke.
        report.outcome = "failed"
        report.longrepr = (
            f"uffd-harness could not collect this test's kernel evidence: "
            f"{type(e).__name__}: {e}\n\n{traceback.format_exc()[-4000:]}"
        )


def _attach_evidence(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    """The test's console slice, ring buffer and crash titles, added to its report; a
    kernel crash turns the report into a failure."""
    guest, start, pool = item.stash[_SLICE]
    run: RunDir = item.config.stash[_RUN]
    if pool.pending_meta:
        report.user_properties.append(("run_meta", pool.pending_meta))
        pool.pending_meta = {}
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, (GuestHang, CommandTimeout)) and guest.alive():
        # A guest command outlived its limit: take the guest's own account of what is
        # stuck, then retire it; the next test gets a new guest.
        dump = exc.dump if isinstance(exc, GuestHang) else guest.hang_dump()
        report.user_properties.append(("hang", str(exc)))
        report.sections.append(("guest hang dump (SysRq w, l)", dump[-20000:]))
        report.longrepr = f"hang: {exc}\n(guest dump in the captured sections and console log)"
        guest.stop()
    elif not guest.reachable():
        # The guest died under the test (panic=-1 makes QEMU exit): let its last console
        # lines land before the slice is cut.
        guest.wait_exit(10.0)
    end = guest.console.offset()
    text = guest.console.read(start, end)
    pool.end_test(guest, end, item.nodeid)
    name = _safe_name(item.nodeid)
    slice_path = run.root / "logs" / f"{name}.console.log"
    slice_path.parent.mkdir(parents=True, exist_ok=True)
    slice_path.write_text(text)
    report.user_properties.append(("log_slice", str(slice_path.relative_to(run.root))))
    try:
        dmesg = _test_dmesg(guest, pool)
    except HarnessError as e:
        dmesg = None
        report.user_properties.append(("dmesg_error", str(e)))
        report.sections.append(("dmesg not collected", str(e)))
    if dmesg is not None:
        dmesg_path = slice_path.with_name(f"{name}.dmesg.txt")
        dmesg_path.write_bytes(dmesg)
        report.user_properties.append(("dmesg", str(dmesg_path.relative_to(run.root))))
    from harness.verdict.crashlog import parse

    crashes = parse(text)
    # kmemleak's scan thread reports, every 10 minutes, leaks made at any time before: the
    # test that happened to run then did not make them. They fail the run, not this test.
    leaks = [c for c in crashes if c.kind == "memory-leak"]
    crashes = [c for c in crashes if c.kind != "memory-leak"]
    pool.session_crashes += [
        _session_crash(
            c,
            guest.console.path.name,
            "kmemleak scan while a test ran",
            during=item.nodeid.split("::", 1)[-1],
        )
        for c in leaks
    ]
    for c in crashes:
        report.user_properties.append(("crash", {"kind": c.kind, "title": c.title, "text": c.text}))
    if crashes:
        # The kernel broke while this test ran: that is this test's failure, whatever
        # userspace saw (often just a lost connection). xfail does not cover it: a known
        # bug is a failed check, not an oops.
        own = report.longreprtext.strip() if report.failed else ""
        report.outcome = "failed"
        if hasattr(report, "wasxfail"):
            del report.wasxfail
        report.longrepr = (
            "kernel crash during the test: "
            + "; ".join(c.title for c in crashes)
            + "\n\n"
            + "\n\n".join(c.text for c in crashes)
            + (f"\n\nthe test itself reported:\n{own[-3000:]}" if own else "")
        )
    if report.failed and text.strip():
        report.sections.append(("kernel log of this test (console)", text[-8000:]))
    if not guest.alive():
        report.user_properties.append(("guest_died", True))
    if pool.settings["gcov"]:
        _save_gcov(guest, Path(str(pool.settings["gcov"])), name, report)


def _save_gcov(guest: Guest, root: Path, name: str, report: pytest.TestReport) -> None:
    """The counters this test moved (they are reset after each read), as DIR/<test>.tar;
    a guest that died took them with it, which DIR/<test>.lost says."""
    from harness.guest import gcov

    root.mkdir(parents=True, exist_ok=True)
    try:
        if not guest.reachable():
            raise HarnessError("the guest died during the test")
        (root / f"{name}.tar").write_bytes(gcov.snapshot(guest))
    except HarnessError as e:
        (root / f"{name}.lost").write_text(f"{e}\n")
        report.user_properties.append(("gcov_lost", str(e)))


def _test_dmesg(guest: Guest, pool: "GuestPool") -> bytes | None:
    """The kernel ring buffer written during the test (cleared as it is read). A test that
    used the agent already has it from the agent's own round trip."""
    agent = pool.agent
    if agent is not None and agent.guest is guest:
        text = agent.take_dmesg()
        if text is not None:
            return text.encode()
    if not guest.reachable():
        return None
    return guest.run("dmesg -c", timeout=30).stdout


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.skipped:
        return "skipped"
    return "passed" if report.passed else "failed"


def _reason(report: pytest.TestReport) -> str:
    crashes = [v["title"] for k, v in report.user_properties if k == "crash"]
    if crashes:
        return "kernel crash: " + "; ".join(crashes)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if report.failed:
        lines = [ln for ln in report.longreprtext.splitlines() if ln.strip()]
        if not lines:
            return "failed"
        # A setup error's message leads with what went wrong (a boot's then quotes the
        # console); a test's failure ends with it (the assertion under the traceback).
        return (lines[0] if report.when == "setup" else lines[-1]).strip()
    return ""


class ResultsRecorder:
    """One record per test, kept in the controller process (xdist sends it every report)."""

    def __init__(self, run: RunDir, session_crashes: list[dict] | None = None):
        self.run = run
        #: Crashes outside every test: this process's guest pool adds to it, and so does
        #: pytest_testnodedown with each xdist worker's.
        self.session_crashes = [] if session_crashes is None else session_crashes

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Ctrl-C, SIGTERM and SIGHUP arrive as exceptions at any bytecode: the record is
        # kept before the terminal says PASSED, and no signal lands half-way through it.
        with signals_deferred():
            self._record(report)

    def _record(self, report: pytest.TestReport) -> None:
        if report.when == "???":
            self._record_crashed_worker(report)
            return
        setup_problem = report.when == "setup" and not report.passed
        props = {k: v for k, v in report.user_properties if k != "crash"}
        for key, value in props.get("run_meta", {}).items():
            self.run.meta.setdefault(key, value)
        if not props.get("uffd_guest") or (report.when != "call" and not setup_problem):
            return
        outcome = "error" if setup_problem and report.failed else _outcome(report)
        self.run.add(
            TestRecord(
                name=report.nodeid.split("::", 1)[-1],
                outcome=outcome,
                duration=report.duration,
                reason=_reason(report),
                agent=props.get("agent"),
                crashes=[v for k, v in report.user_properties if k == "crash"],
                log_slice=props.get("log_slice"),
                dmesg=props.get("dmesg"),
                reproduce=props.get("reproduce"),
                start_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.start)),
            )
        )

    def _record_crashed_worker(self, report: pytest.TestReport) -> None:
        """pytest-xdist's report for a test whose worker died under it (when "???"): the
        worker's own reports never came, so the test is an error here, and its console
        slice is the last lines the worker's guest printed (the guest dies with its worker:
        QEMU has a parent-death signal)."""
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "")
        logs = sorted(
            self.run.root.glob(f"console-{worker}-*.log"), key=lambda p: p.stat().st_mtime
        )
        slice_path = None
        if logs:
            tail = logs[-1].read_text(errors="replace").splitlines(True)[-40:]
            slice_path = self.run.root / "logs" / f"{_safe_name(report.nodeid)}.console.log"
            slice_path.parent.mkdir(parents=True, exist_ok=True)
            slice_path.write_text(f"(last lines of {logs[-1].name})\n" + "".join(tail))
        lines = [ln for ln in report.longreprtext.splitlines() if ln.strip()]
        self.run.add(
            TestRecord(
                name=report.nodeid.split("::", 1)[-1],
                outcome="error",
                duration=report.duration,
                reason=f"xdist worker {worker or '?'} crashed: "
                + (lines[0].strip() if lines else "no report"),
                log_slice=str(slice_path.relative_to(self.run.root)) if slice_path else None,
            )
        )

    @pytest.hookimpl(trylast=True)  # after pytest's own, which may close the guest pool
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.session_crashes:
            self.run.meta["session_crashes"] = list(self.session_crashes)
            if session.exitstatus == pytest.ExitCode.OK:
                # A crash anywhere fails the run, whichever test it fell between.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if not self.run.records and not self.session_crashes:
            return
        with signals_deferred():
            self.run.flush()
        if session.exitstatus == pytest.ExitCode.OK and not counts(self.run.records)["passed"]:
            # Everything skipped proves nothing about the kernel: a validation run that
            # checked nothing must not look like one that found nothing.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for c in self.session_crashes:
            terminalreporter.write_line(
                f"uffd-harness: kernel crash outside any test, {crash_place(c)}: {c['title']} "
                f"({c['console']})",
                red=True,
            )
        if not self.run.records:
            return
        terminalreporter.write_line(f"uffd-harness results: {self.run.root}")
        c = counts(self.run.records)
        if not c["passed"]:
            no_uffd = all(r.reason.startswith(NO_USERFAULTFD) for r in self.run.records)
            if no_uffd:
                why = "the kernel was built without CONFIG_USERFAULTFD"
            elif c["failed"] or c["error"]:
                why = "see the failures in the summary"
            else:
                why = "see the skip reasons in the summary"
            terminalreporter.write_line(
                f"uffd-harness: no case passed ({count_line(self.run.records)}): nothing was "
                f"checked on this kernel; {why}",
                red=True,
            )
