"""Every byte of a guest's console belongs to its boot, to a test's slice, or to a gap the
session examines: crashes between tests, after the last test and in a boot that failed are
session crash records, a worker sends its own to the controller, and any of them fails the
run."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.guest.console import ConsoleLog
from harness.results.formats import crash_place, summary_text
from harness.results.rundir import RunDir
from harness.suite import plugin

WARN = (
    "[   {t}.000000] ------------[ cut here ]------------\n"
    "[   {t}.000001] WARNING: CPU: 1 PID: 77 at mm/userfaultfd.c:9 {func}+0x1/0x2\n"
    "[   {t}.000002] Call Trace:\n"
    "[   {t}.000003]  <TASK>\n"
    "[   {t}.000004]  {func}+0x1/0x2\n"
    "[   {t}.000005]  </TASK>\n"
    "[   {t}.000006] ---[ end trace 0000000000000000 ]---\n"
)


class FakeGuest:
    def __init__(self, path: Path):
        self.console = ConsoleLog(path)

    def say(self, text: str) -> None:
        with self.console.path.open("a") as f:
            f.write(text)

    def alive(self) -> bool:
        return False

    def reachable(self) -> bool:
        return self.alive()

    def stop(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


def make_pool(tmp_path: Path) -> plugin.GuestPool:
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[plugin._SETTINGS] = {}
    config.stash[plugin._RUN] = RunDir(tmp_path, {}, "run")
    config.stash[plugin._SESSION_CRASHES] = []
    return plugin.GuestPool(config)


def booted(pool: plugin.GuestPool, tmp_path: Path, boot_text: str = "Linux version\n") -> FakeGuest:
    guest = FakeGuest(tmp_path / "console-main-1.log")
    guest.say(boot_text)
    pool.guest = guest  # type: ignore[assignment]
    pool.attributed = pool._examine(guest, 0, guest.console.offset(), "at boot")  # type: ignore[arg-type]
    return guest


def run_test(pool: plugin.GuestPool, guest: FakeGuest, name: str, output: str) -> str:
    start = pool.begin_test(guest, f"test_x.py::{name}")  # type: ignore[arg-type]
    guest.say(output)
    end = guest.console.offset()
    pool.end_test(guest, end, f"test_x.py::{name}")  # type: ignore[arg-type]
    return guest.console.read(start, end)


def places(pool: plugin.GuestPool) -> list[tuple[str, str]]:
    return [(c["title"], crash_place(c)) for c in pool.session_crashes]


def test_a_crash_between_two_tests_is_a_session_crash_naming_both(tmp_path):
    pool = make_pool(tmp_path)
    guest = booted(pool, tmp_path)
    assert run_test(pool, guest, "test_a", "a ran\n") == "a ran\n"
    guest.say(WARN.format(t=10, func="in_the_gap"))  # after a's slice was cut
    assert run_test(pool, guest, "test_b", "b ran\n") == "b ran\n"
    pool.close()
    assert places(pool) == [
        ("WARNING in in_the_gap", "between tests (after test_a, before test_b)")
    ]
    assert pool.session_crashes[0]["console"] == "console-main-1.log"


def test_a_crash_after_the_last_test_is_found_when_the_pool_closes(tmp_path):
    pool = make_pool(tmp_path)
    guest = booted(pool, tmp_path)
    run_test(pool, guest, "test_a", "a ran\n")
    guest.say(WARN.format(t=11, func="after_everything"))
    assert pool.session_crashes == []
    pool.close()
    assert places(pool) == [("WARNING in after_everything", "after the last test (after test_a)")]


def test_a_crash_at_boot_and_one_in_a_test_slice_are_not_counted_twice(tmp_path):
    pool = make_pool(tmp_path)
    guest = booted(pool, tmp_path, WARN.format(t=1, func="while_booting"))
    text = run_test(pool, guest, "test_a", WARN.format(t=12, func="in_test_a"))
    assert "in_test_a" in text and "while_booting" not in text
    pool.close()
    assert places(pool) == [("WARNING in while_booting", "at boot")]


def test_a_replaced_guest_has_its_rest_examined(tmp_path):
    pool = make_pool(tmp_path)
    guest = booted(pool, tmp_path)
    run_test(pool, guest, "test_a", "a\n")
    guest.say(WARN.format(t=13, func="before_the_guest_went"))
    pool.discard()
    assert pool.guest is None
    assert places(pool) == [("WARNING in before_the_guest_went", "between tests (after test_a)")]


def test_every_byte_is_examined_once(tmp_path):
    """The boot, the slices and the gaps tile the console: the same crash placed anywhere
    is found exactly once."""
    for where in range(5):
        pool = make_pool(tmp_path / str(where))
        (tmp_path / str(where)).mkdir()
        parts = ["boot\n", "a\n", "gap\n", "b\n", "end\n"]
        parts[where] += WARN.format(t=20, func="somewhere")
        guest = booted(pool, tmp_path / str(where), parts[0])
        slices = [run_test(pool, guest, "test_a", parts[1])]
        guest.say(parts[2])
        slices.append(run_test(pool, guest, "test_b", parts[3]))
        guest.say(parts[4])
        pool.close()
        in_slices = sum("somewhere" in s for s in slices)
        assert in_slices + len(pool.session_crashes) == 1, where


def test_a_worker_sends_its_session_crashes_and_the_controller_fails_the_run(tmp_path):
    crash = {"kind": "warning", "title": "WARNING in x", "text": "", "console": "c.log"}
    crash.update(phase="after the last test", after="test_a", before="")
    # The worker side: its sessionfinish puts them in the workeroutput xdist sends back.
    worker_config = SimpleNamespace(stash=pytest.Stash(), workeroutput={})
    worker_config.stash[plugin._SESSION_CRASHES] = [crash]
    plugin.pytest_sessionfinish(SimpleNamespace(config=worker_config))
    # The controller side: the node's workeroutput arrives with pytest_testnodedown.
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[plugin._SESSION_CRASHES] = []
    node = SimpleNamespace(config=config, workeroutput=worker_config.workeroutput)
    plugin.pytest_testnodedown(node, None)
    plugin.pytest_testnodedown(SimpleNamespace(config=config), "worker died")  # no output
    assert config.stash[plugin._SESSION_CRASHES] == [crash]
    run = RunDir(tmp_path, {}, "run")
    recorder = plugin.ResultsRecorder(run, config.stash[plugin._SESSION_CRASHES])
    session = SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    recorder.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert run.meta["session_crashes"] == [crash]
    assert "WARNING in x  (after the last test (after test_a); c.log)" in summary_text(
        [], None, [crash]
    )


def test_no_session_crash_leaves_the_exit_status_alone(tmp_path):
    recorder = plugin.ResultsRecorder(RunDir(tmp_path, {}, "run"), [])
    session = SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    recorder.pytest_sessionfinish(session)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.OK


LEAK = Path(__file__).parent.parent / "data" / "crashes" / "syzbot-5.18-memory-leak-kmemleak.log"


class HealthyGuest(FakeGuest):
    """A guest that answers: kmemleak's list (or nothing, on a kernel without it)."""

    def __init__(self, path: Path, kmemleak: str):
        super().__init__(path)
        self.kmemleak = kmemleak
        self.commands: list[str] = []

    def alive(self) -> bool:
        return True

    def run(self, cmd: str, timeout: float):
        self.commands.append(cmd)
        return SimpleNamespace(stdout=self.kmemleak.encode(), exit_code=0)


def test_kmemleak_leaks_at_the_end_of_the_run_are_session_crashes(tmp_path):
    """Read before the guest stops (at the end of the run, or when it is replaced)."""
    pool = make_pool(tmp_path)
    leaks = "".join(
        line
        for line in LEAK.read_text().splitlines(True)
        if not line.startswith(("#", "BUG: memory leak"))
    )
    guest = HealthyGuest(tmp_path / "console-main-1.log", leaks)
    guest.say("boot\n")
    pool.guest = guest  # type: ignore[assignment]
    pool.attributed = guest.console.offset()
    run_test(pool, guest, "test_a", "a\n")
    pool.close()
    assert guest.commands == [plugin.KMEMLEAK_COMMAND]
    assert places(pool) == [
        ("memory leak in autofs_wait", "kmemleak before the guest stopped (after test_a)")
    ]
    assert pool.session_crashes[0]["console"] == "kmemleak-main-0.txt"
    assert (tmp_path / "kmemleak-main-0.txt").read_text() == leaks


@pytest.mark.parametrize("ending", ["close", "discard"])
def test_a_kernel_without_kmemleak_costs_one_command_and_reports_nothing(tmp_path, ending):
    """Read before every guest stops: at the end of the run (close), and when a guest is
    replaced mid-run or by --fresh-guest (discard), or its leaks would go with it."""
    pool = make_pool(tmp_path)
    guest = HealthyGuest(tmp_path / "console-main-1.log", "")
    pool.guest = guest  # type: ignore[assignment]
    getattr(pool, ending)()
    assert guest.commands == [plugin.KMEMLEAK_COMMAND]
    assert pool.session_crashes == []
    assert not list(tmp_path.glob("kmemleak-*"))
