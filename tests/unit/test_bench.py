"""The bench's pure half on figures recorded from real runs on the development machine
(TCG, 2 host CPUs, Debian 6.1): statistics, boot stages, per-test and suite breakdowns,
targets, the table and the JSON. Nothing here boots a guest."""

import argparse
import json
import time
from pathlib import Path

import pytest

from harness import HarnessError
from harness.bench import boot as bench_boot
from harness.bench import command as bench
from harness.bench import report as bench_report
from harness.bench.profile import (
    BootRecord,
    boot_difference,
    boot_profile,
    boot_stages,
    kernel_clock,
    overhead_profile,
    overheads,
    ready_record,
    slowest_agents,
    ssh_kind,
    steady_tests,
    suite_breakdown,
    time_parts,
    top_functions,
)
from harness.bench.report import (
    Figure,
    ProfileRow,
    cheapest_case,
    compute_ratios,
    evaluate_targets,
    fmt_seconds,
    render,
    report_json,
    stats,
    stress_rows,
)
from harness.bench.timer import PytestTimer
from harness.events import (
    BootEnd,
    BootLine,
    BootStart,
    CommandEnd,
    CommandStart,
    GuestReady,
    GuestStarting,
    GuestStop,
    ImageReady,
    PortTaken,
    Push,
    QmpReady,
    ignore,
)
from harness.suite import plugin as suite_plugin

# -- recorded figures ---------------------------------------------------------------------

#: Console lines of a ready boot (host seconds after spawn at 100.0), its kernel log
#: excerpt, and a bare boot of the same kernel, both recorded under TCG.
READY_LINES = [
    (105.48, "[    0.060000] tsc: Unable to calibrate against PIT"),
    (110.91, '[    8.260046] Unstable clock detected, switching default tracing clock to "global"'),
    (115.20, "uffd-harness: init started"),
    (116.08, "uffd-harness: swap: zram 256 MiB on"),
    (116.64, "uffd-harness: READY"),
]
DMESG = """\
[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)
[    6.726875] Freeing unused kernel image (initmem) memory: 2824K
[    7.035383] Run /init as init process
[    8.765872] zram: Added device: zram0
"""


#: The events of that ready boot as its guest emitted them: a port was taken once, the
#: console's first line is blank.
READY_EVENTS = [
    GuestStarting(t=99.2),
    ImageReady(Path("/c/initramfs.cpio"), True, 0.1, t=99.3),
    BootStart(4242, 34567, "tcg", "max", 2, 3072, t=100.0),
    PortTaken(34567, t=100.1),
    BootStart(4243, 34568, "tcg", "max", 2, 3072, t=100.2),
    QmpReady(4243, t=100.635),
    BootLine("", t=105.1),
    *(BootLine(text, t=t) for t, text in READY_LINES),
    BootEnd(16.65, t=116.65),
    GuestReady("ssh", 34568, 1.95, t=118.60),
]


def ready_boot() -> BootRecord:
    rec = ready_record(READY_EVENTS)
    rec.dmesg = DMESG
    return rec


def bare_boot() -> BootRecord:
    return BootRecord(
        "bare",
        200.0,
        213.58,
        first_output=203.49,
        qmp=200.61,
        lines=[(213.58, "uffd-bench: bare init up 9.61")],
        uptime=9.61,
    )


#: Timing plugin records of the per-test overhead run: five wp-errors/anon tests in one
#: guest; the first boots the guest, the last stops it.
TIMING_TESTS = [
    {
        "name": "test_agent[wp-errors-anon-00]",
        "start": 3411.034272717,
        "phases": {"setup": 23.112483557, "call": 0.325306953, "teardown": 0.033125649},
        "makereport": {"setup": 0.000233777, "call": 0.149714954, "teardown": 0.000180457},
        "logreport": {"setup": 0.000114053, "call": 0.020504661, "teardown": 0.000052342},
        "ssh": [
            {"kind": "dmesg", "seconds": 0.182321098},
            {"kind": "push", "seconds": 0.994498501},
            {"kind": "agent", "seconds": 0.320998223},
            {"kind": "dmesg", "seconds": 0.148588952},
        ],
        "guest_start": 21.532631329,
        "agent_s": 0.119,
        "end": 3434.678927357,
    },
    {
        "name": "test_agent[wp-errors-anon-01]",
        "start": 3434.678964646,
        "phases": {"setup": 0.014363831, "call": 0.552958122, "teardown": 0.007767099},
        "makereport": {"setup": 0.000145721, "call": 0.103579998, "teardown": 0.000136719},
        "logreport": {"setup": 0.000053094, "call": 0.007738986, "teardown": 0.000048783},
        "ssh": [
            {"kind": "agent", "seconds": 0.548809748},
            {"kind": "dmesg", "seconds": 0.10262182},
        ],
        "agent_s": 0.072,
        "end": 3435.366585976,
    },
    {
        "name": "test_agent[wp-errors-anon-02]",
        "start": 3435.366611637,
        "phases": {"setup": 0.000809676, "call": 0.395886188, "teardown": 0.04474484},
        "makereport": {"setup": 0.000073255, "call": 0.085595337, "teardown": 0.000121519},
        "logreport": {"setup": 0.000034314, "call": 0.042132695, "teardown": 0.00004721},
        "ssh": [
            {"kind": "agent", "seconds": 0.27853121},
            {"kind": "dmesg", "seconds": 0.082217845},
        ],
        "agent_s": 0.028,
        "end": 3435.93812922,
    },
    {
        "name": "test_agent[wp-errors-anon-03]",
        "start": 3435.938155347,
        "phases": {"setup": 0.009676691, "call": 0.156742786, "teardown": 0.031220338},
        "makereport": {"setup": 0.000118735, "call": 0.364682747, "teardown": 0.000120898},
        "logreport": {"setup": 0.000066872, "call": 0.047939215, "teardown": 0.000046076},
        "ssh": [
            {"kind": "agent", "seconds": 0.152973062},
            {"kind": "dmesg", "seconds": 0.361979318},
        ],
        "agent_s": 0.04,
        "end": 3436.550160878,
    },
    {
        "name": "test_agent[wp-errors-anon-04]",
        "start": 3436.550211957,
        "phases": {"setup": 0.000912253, "call": 0.213370914, "teardown": 0.162574412},
        "makereport": {"setup": 0.00008071, "call": 0.258864939, "teardown": 0.000126607},
        "logreport": {"setup": 0.000035235, "call": 0.094935635, "teardown": 0.000049734},
        "ssh": [
            {"kind": "agent", "seconds": 0.202213061},
            {"kind": "dmesg", "seconds": 0.251646512},
        ],
        "agent_s": 0.036,
        "guest_stop": 0.036269598,
        "end": 3437.281868289,
    },
]
TIMING = {"session": {"start": 3410.908416823, "finish": 3444.769846146}, "tests": TIMING_TESTS}

#: `uffd-agent` results (workload, mem, status, duration_s) from a recorded suite run.
SUITE_RESULTS = [
    ("wp-basic", "anon", "pass", 0.164),
    ("wp-basic", "anon-thp", "pass", 1.04),
    ("wp-basic", "shmem", "pass", 0.347),
    ("wp-basic", "shmem-private", "pass", 0.277),
    ("wp-basic", "hugetlb", "pass", 0.333),
    ("wp-basic", "hugetlb-private", "pass", 0.223),
    ("wp-basic", "hugetlb-1g", "pass", 6.756),
    ("wp-fork-cow", "hugetlb-private", "fail", 11.539),
]

#: The agent's stress result on hugetlb (4 threads, 10 s) as it printed it.
STRESS_HUGETLB = {
    "workload": "stress",
    "mem": "hugetlb",
    "status": "pass",
    "faults": {"wp": 53, "missing": 14, "minor": 22},
    "latency_us": {"samples": 87, "p50": 240739.19, "p99": 3150099.09, "max": 3729622.51},
    "rates": {
        "seconds": 13.499,
        "bounces": 3,
        "faults_per_s": {"missing": 1.037, "wp": 3.926, "minor": 1.63},
        "latency_us": {
            "missing": {"samples": 14, "p50": 829240.26, "p99": 2004164.96, "max": 2455182.84},
            "wp": {"samples": 51, "p50": 55941.95, "p99": 3150099.09, "max": 3729622.51},
            "minor": {"samples": 22, "p50": 107133.39, "p99": 420332.15, "max": 421177.53},
        },
    },
    "duration_s": 13.988,
}


def recorded_figures() -> list[Figure]:
    return [
        Figure("boot.bare", "bare boot", [13.58, 12.9, 14.1]),
        Figure("boot.ready", "boot to ready", [18.60, 17.2, 19.4]),
        Figure("test.overhead", "per-test overhead", [0.544, 0.572, 0.616]),
        Figure("image.cached", "image build, cached", [0.104, 0.153]),
        Figure("agent.cached", "agent build, cached", [0.0072, 0.0092]),
    ]


# -- statistics and formatting ------------------------------------------------------------


def test_stats_min_median_max():
    s = stats([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.min, s.median, s.max) == (4, 1.0, 2.5, 10.0)
    assert stats([]) is None


@pytest.mark.parametrize(
    "value, text",
    [(0.0082, "8.2 ms"), (0.572, "572 ms"), (13.58, "13.58 s"), (None, "-"), (-0.472, "-472 ms")],
)
def test_fmt_seconds(value, text):
    assert fmt_seconds(value) == text


# -- targets and ratios -------------------------------------------------------------------


def test_targets_on_recorded_figures():
    targets = {t.key: t for t in evaluate_targets(recorded_figures(), "tcg", 2)}
    boot = targets["boot_ratio"]
    assert boot.value == pytest.approx(18.60 / 13.58)
    assert boot.met is False
    assert "missed by 0.12 x" in boot.detail
    assert "1.62 s longer than 1.25 x bare boot" in boot.detail
    assert targets["test_overhead"].met is False
    assert targets["test_overhead"].detail.startswith("missed by 422 ms: 572 ms vs 150 ms")
    assert targets["image_cached"].met is False
    assert targets["agent_cached"].met is True
    assert targets["agent_cached"].detail == "met: 8.2 ms (limit 100 ms)"
    assert targets["suite_wall"].met is None
    assert targets["suite_wall"].detail == "not measured in this run"


def test_tcg_targets_say_when_the_run_was_not_tcg():
    figures = [*recorded_figures(), Figure("suite.wall", "suite", [150.0])]
    targets = {t.key: t for t in evaluate_targets(figures, "kvm", 4)}
    assert "this run used KVM" in targets["test_overhead"].detail
    assert "this guest had 4" in targets["suite_wall"].detail
    assert targets["suite_wall"].met is True


def test_suite_overhead_share_target_and_ratios():
    figures = [
        Figure("suite.wall", "wall", [200.0]),
        Figure("suite.overhead", "overhead", [50.0]),
        Figure("boot.bare", "bare", [10.0]),
        Figure("boot.ready", "ready", [12.0]),
    ]
    ratios = {r.key: r.value for r in compute_ratios(figures)}
    assert ratios == {"boot_ready_over_bare": 1.2, "suite_overhead_over_wall": 0.25}
    share = {t.key: t for t in evaluate_targets(figures, "tcg", 2)}["suite_overhead"]
    assert share.met is False and share.detail.startswith("missed by 15.0 points: 25.0 %")
    assert {t.key: t for t in evaluate_targets(figures, "tcg", 2)}["boot_ratio"].met is True


# -- boots --------------------------------------------------------------------------------


def test_kernel_clock_at_init():
    assert kernel_clock(ready_boot()) == 7.035383
    assert kernel_clock(bare_boot()) == 9.61


def test_a_ready_boot_is_recorded_from_its_events():
    b = ready_boot()
    # From the first spawn (a taken port is part of the boot) to the token verified.
    assert (b.spawn, b.qmp, b.end) == (100.0, 100.635, 118.60)
    assert b.first_output == 105.48  # the first line with something in it
    assert b.lines[1:] == READY_LINES


def test_ready_boot_stages_add_up_to_its_total():
    b = ready_boot()
    st = boot_stages(b)
    assert list(st) == ["qmp", "first_output", "init", "swap_on", "ready", "ssh_ok"]
    assert st["init"] == pytest.approx(115.20 - 105.48)
    assert st["ssh_ok"] == pytest.approx(118.60 - 116.64)
    assert sum(st.values()) == pytest.approx(b.total)


def test_bare_boot_stages_add_up_to_its_total():
    b = bare_boot()
    st = boot_stages(b)
    assert list(st) == ["qmp", "first_output", "init"]
    assert sum(st.values()) == pytest.approx(13.58)


def test_a_missing_mark_merges_its_stage_into_the_next():
    b = ready_boot()
    b.lines = [line for line in READY_LINES if "swap" not in line[1]]
    st = boot_stages(b)
    assert "swap_on" not in st
    assert st["ready"] == pytest.approx(116.64 - 115.20)
    assert sum(st.values()) == pytest.approx(b.total)


def test_boot_profile_and_difference_on_recorded_boots():
    boots = [bare_boot(), ready_boot()]
    rows = {r.label: r.seconds for r in boot_profile(boots)}
    assert rows["bare: total"] == pytest.approx(13.58)
    assert rows["ready: total"] == pytest.approx(18.60)
    assert rows["ready: (guest clock at /init; slow under TCG)"] == pytest.approx(7.035383)
    diff = {r.label: r.seconds for r in boot_difference(boots)}
    assert diff["ready - bare: total (difference of medians)"] == pytest.approx(5.02)
    parts = [v for k, v in diff.items() if "total" not in k]
    # The stages common to both, plus those only the ready boot has, explain the whole gap.
    assert sum(parts) == pytest.approx(5.02)
    assert boot_difference([bare_boot()]) == []


# -- per-test and suite breakdowns --------------------------------------------------------


#: The guest's events during the first test of a recorded overhead run (the test that
#: boots the guest), and during the last (the one whose teardown stops it).
FIRST_TEST_EVENTS = [
    *READY_EVENTS,
    CommandStart("dmesg -c", t=118.61),
    CommandEnd("dmesg -c", 0.18, 0, t=118.79),
    Push(Path("/c/uffd-agent"), "/tmp/uffd-agent", "ab" * 32, 0.99, t=119.8),
    CommandStart("/tmp/uffd-agent run wp-errors --mem anon; rc=$?; ...", t=119.81),
    CommandEnd("/tmp/uffd-agent run wp-errors --mem anon; rc=$?; ...", 0.32, 0, t=120.13),
    CommandEnd("dmesg -c", 0.15, 0, t=120.3),
]
LAST_TEST_EVENTS = [
    CommandEnd("/tmp/uffd-agent run wp-errors --mem anon; rc=$?; ...", 0.2, 0, t=130.2),
    CommandEnd("sleep 999", 5.0, None, "command timed out after 5 s", t=135.2),
    GuestStop(0.036, 0, False, t=136.0),
]


class FakeItem:
    def __init__(self, name: str):
        self.nodeid = f"test_overhead.py::{name}"


def timed_test(timer: PytestTimer, name: str, events: list) -> dict:
    """One test through the timer's protocol wrapper, the guest's events inside it."""
    wrapper = timer.pytest_runtest_protocol(FakeItem(name), None)
    next(wrapper)
    for e in events:
        timer.pytest_uffd_event(e)
    with pytest.raises(StopIteration):
        wrapper.send(None)
    return timer.tests[-1]


def test_the_timer_credits_boots_commands_pushes_and_stops_to_their_test(tmp_path: Path):
    timer = PytestTimer(tmp_path / "timing.json")
    timer.pytest_uffd_event(CommandEnd("true", 9.0, 0))  # between tests: nobody's
    first = timed_test(timer, "test_agent[wp-errors-anon-00]", FIRST_TEST_EVENTS)
    last = timed_test(timer, "test_agent[wp-errors-anon-01]", LAST_TEST_EVENTS)
    assert first["guest_start"] == pytest.approx(118.60 - 99.2)
    assert "guest_stop" not in first
    assert first["ssh"] == [
        {"kind": "dmesg", "seconds": 0.18},
        {"kind": "push", "seconds": 0.99},
        {"kind": "agent", "seconds": 0.32},
        {"kind": "dmesg", "seconds": 0.15},
    ]
    assert last["ssh"] == [
        {"kind": "agent", "seconds": 0.2},
        {"kind": "other", "seconds": 5.0},
    ]
    assert last["guest_stop"] == 0.036 and "guest_start" not in last
    assert timer.boots == 1
    # The parts of each test's wall still add up with these records.
    for t in (first, last):
        assert sum(time_parts(t).values()) == pytest.approx(t["end"] - t["start"])
    timer.pytest_unconfigure(None)
    data = json.loads((tmp_path / "timing.json").read_text())
    assert data["boots"] == 1 and [t["name"] for t in data["tests"]] == [
        "test_agent[wp-errors-anon-00]",
        "test_agent[wp-errors-anon-01]",
    ]


def test_a_start_that_fails_counts_as_a_boot_up_to_its_stop(tmp_path: Path):
    timer = PytestTimer(tmp_path / "timing.json")
    failed = [GuestStarting(t=10.0), BootStart(1, 2, "tcg", "max", 2, 3072, t=10.5)]
    failed.append(GuestStop(0.5, 0, False, t=41.0))
    test = timed_test(timer, "test_agent[wp-basic-anon]", failed)
    assert test["guest_start"] == 31.0 and "guest_stop" not in test
    assert timer.boots == 1


def test_the_suite_plugins_guests_report_to_a_timer_in_the_session(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """GuestPool gives its guests a sink that calls the session's pytest_uffd_event hook,
    which the timer implements (this session loads the suite plugin, tests/conftest.py)."""
    sinks = []

    def no_guest(settings, console_log=None, events=ignore, **kw):
        sinks.append(events)
        raise HarnessError("no guest in a unit test")

    monkeypatch.setattr(suite_plugin, "guest_from_settings", no_guest)
    timer = PytestTimer(tmp_path / "timing.json")
    request.config.pluginmanager.register(timer, "test-timer")
    try:
        with pytest.raises(HarnessError):
            suite_plugin.GuestPool(request.config).get()
        timer.current = {"ssh": []}
        sinks[0](Push(Path("/c/uffd-agent"), "/tmp/uffd-agent", "ab" * 32, 0.5))
    finally:
        request.config.pluginmanager.unregister(timer)
    assert timer.current["ssh"] == [{"kind": "push", "seconds": 0.5}]


def test_steady_tests_leave_out_the_boot_and_the_stop():
    steady = steady_tests(TIMING_TESTS)
    assert [t["name"][-3:-1] for t in steady] == ["01", "02", "03"]
    assert steady_tests(TIMING_TESTS[:2]) == []


def test_time_parts_add_up_to_each_tests_wall():
    for t in TIMING_TESTS:
        parts = time_parts(t)
        assert sum(parts.values()) == pytest.approx(t["end"] - t["start"])
    parts = time_parts(TIMING_TESTS[1])
    assert parts["agent's own duration"] == 0.072
    assert parts["agent exec: SSH channel, process start/exit in guest"] == pytest.approx(
        0.548809748 - 0.072
    )
    assert parts["plugin: `dmesg -c` over SSH"] == pytest.approx(0.10262182)


def test_overheads_are_wall_minus_the_agents_own():
    steady = steady_tests(TIMING_TESTS)
    got = overheads(steady)
    assert got[0] == pytest.approx(3435.366585976 - 3434.678964646 - 0.072)
    assert sorted(round(x, 3) for x in got) == [0.544, 0.572, 0.616]
    rows = {r.label: r.seconds for r in overhead_profile(steady)}
    assert rows["overhead (wall - agent's own)"] == pytest.approx(0.5436, abs=0.03)
    assert overhead_profile([]) == []


def test_suite_breakdown_adds_up_to_the_wall():
    spawn, exit_ = 3409.5, 3445.2
    rows = suite_breakdown({**TIMING, "boots": 1}, spawn, exit_)
    by = {r.label: r.seconds for r in rows}
    assert by["wall"] == pytest.approx(exit_ - spawn)
    assert sum(r.seconds for r in rows if r.label != "wall") == pytest.approx(exit_ - spawn)
    assert by["guest boots (1, to token verified)"] == pytest.approx(21.532631329)
    assert by["agents' own durations"] == pytest.approx(0.295)
    assert suite_breakdown({}, 0.0, 5.0)[0].seconds == 5.0


def test_slowest_agents_and_their_share():
    rows = slowest_agents(TIMING_TESTS, n=2)
    assert [r.label for r in rows[:2]] == [
        "test_agent[wp-errors-anon-00]",
        "test_agent[wp-errors-anon-01]",
    ]
    assert rows[2].note == f"{(0.119 + 0.072) / 0.295 * 100:.0f} % of all agent time"
    assert slowest_agents([]) == []


@pytest.mark.parametrize(
    "cmd, kind",
    [
        ("/tmp/uffd-agent run wp-basic --mem anon", "agent"),
        ("dmesg -c", "dmesg"),
        ("true", "other"),
    ],
)
def test_ssh_commands_are_classified(cmd, kind):
    assert ssh_kind(cmd) == kind


# -- profiles, agent results ---------------------------------------------------------------


def test_top_functions_walks_two_levels_from_the_costliest_harness_call():
    root = ("/x/harness/image.py", 180, "build_image")
    plan = ("/x/harness/image.py", 152, "module_plan")
    parse = ("/x/harness/modules.py", 18, "parse_modules_dep")
    ldd = ("/usr/lib/python3.11/subprocess.py", 506, "run")
    tiny = ("/x/harness/image.py", 44, "load_recipe")
    caller = ("/x/harness/bench/builds.py", 1, "<lambda>")
    raw = {
        caller: (1, 1, 0.0, 0.2, {}),
        root: (1, 1, 0.0, 0.2, {caller: (1, 1, 0.0, 0.2)}),
        plan: (1, 1, 0.0, 0.13, {root: (1, 1, 0.0, 0.13)}),
        parse: (1, 1, 0.0, 0.12, {plan: (1, 1, 0.0, 0.12)}),
        ldd: (2, 2, 0.0, 0.05, {root: (2, 2, 0.0, 0.05)}),
        tiny: (1, 1, 0.0, 0.001, {root: (1, 1, 0.0, 0.001)}),
    }
    rows = top_functions(raw)
    assert [r.label for r in rows] == [
        "harness/image.py:180 build_image",
        "  harness/image.py:152 module_plan",
        "    harness/modules.py:18 parse_modules_dep",
        "  python3.11/subprocess.py run",
    ]
    assert rows[3].note == "2 calls"
    assert top_functions({}) == []


def test_cheapest_case_is_the_shortest_passing_run():
    results = [
        {"workload": w, "mem": m, "status": s, "duration_s": d} for w, m, s, d in SUITE_RESULTS
    ]
    assert cheapest_case(results) == ("wp-basic", "anon")
    assert cheapest_case([r for r in results if r["status"] == "fail"]) is None


def test_stress_rows_by_fault_kind():
    rows = {r["kind"]: r for r in stress_rows(STRESS_HUGETLB)}
    assert list(rows) == ["missing", "wp", "minor"]
    assert rows["wp"]["faults_per_s"] == 3.926
    assert rows["minor"]["p99"] == 420332.15


def test_stress_rows_without_a_rates_block_fall_back_to_counts_and_overall_latency():
    flat = {k: v for k, v in STRESS_HUGETLB.items() if k != "rates"}
    rows = {r["kind"]: r for r in stress_rows(flat)}
    assert rows["wp"]["faults_per_s"] == pytest.approx(53 / 13.988)
    assert rows["wp"]["p50"] is None
    assert rows["all"]["p50"] == 240739.19


# -- output ---------------------------------------------------------------------------------


def recorded_report(stress: dict | None = None) -> bench_report.BenchReport:
    figures = recorded_figures()
    return bench_report.BenchReport(
        meta={
            "release": "6.1.0-56-amd64",
            "accel": "tcg",
            "cpu": "max",
            "smp": 2,
            "mem_mb": 3072,
            "hugepages": "2M:128,1G:1",
            "host_cpus": 2,
            "load_start": "4.92 3.71 2.96",
            "load_end": "6.10 4.00 3.10",
            "runs": 5,
        },
        figures=figures,
        ratios=compute_ratios(figures),
        targets=evaluate_targets(figures, "tcg", 2),
        profiles={
            "boot": boot_profile([bare_boot(), ready_boot()]),
            "boot.diff": boot_difference([bare_boot(), ready_boot()]),
            "test": overhead_profile(steady_tests(TIMING_TESTS)),
            "agent.cached": [ProfileRow("never shown: its target is met", 0.008)],
        },
        stress=stress or {"available": False, "reason": "the agent has no stress workload"},
    )


def test_render_prints_the_table_targets_and_profiles_of_missed_targets():
    text = render(recorded_report())
    assert "measurement" in text and "median" in text
    assert "boot to ready / bare boot (medians)      1.37 x" in text
    assert "[MISSED] boot to ready <= 1.25 x bare boot" in text
    assert "[met   ] cached agent <= 100 ms" in text
    assert "[n/a   ] default suite <= 3 minutes" in text
    assert "ready: init: network, dropbear listening (-> READY)" in text
    assert "agent exec: SSH channel" in text
    assert "never shown" not in text
    assert "not available: the agent has no stress workload" in text


def test_render_stress_table():
    stress = {
        "available": True,
        "mems": {
            "hugetlb": {"status": "pass", "rows": stress_rows(STRESS_HUGETLB)},
            "shmem": {"error": "CommandTimeout: ..."},
        },
    }
    text = render(recorded_report(stress))
    wp = next(line for line in text.splitlines() if line.startswith("  hugetlb    wp "))
    assert wp.split() == ["hugetlb", "wp", "53", "3.9", "55942", "3150099", "3729623"]
    assert "  hugetlb    wp" in text and "(pass)" in text
    assert "  shmem      error: CommandTimeout" in text


def test_json_holds_the_same_figures():
    data = json.loads(json.dumps(report_json(recorded_report())))
    assert data["figures"]["test.overhead"]["stats"]["median"] == 0.572
    assert data["figures"]["test.overhead"]["samples"] == [0.544, 0.572, 0.616]
    assert data["targets"]["boot_ratio"]["met"] is False
    assert data["ratios"]["boot_ready_over_bare"]["value"] == pytest.approx(18.60 / 13.58)
    assert data["stress"]["available"] is False
    assert data["profiles"]["test"][0]["label"] == "agent's own duration"


# -- the command line and small measuring helpers ------------------------------------------


def bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    bench.add_bench_parser(p.add_subparsers(dest="c", required=True))
    return p


def test_bench_subcommand_defaults():
    args = bench_parser().parse_args(["bench"])
    assert (args.runs, args.tests, args.suite_runs) == (5, 20, 1)
    assert args.only == bench.SECTIONS and args.workload is None and args.json is None
    assert args.func is bench.cmd_bench


def test_bench_subcommand_options():
    args = bench_parser().parse_args(
        ["bench", "--runs", "2", "--only", "boot,stress", "--workload", "wp-errors:anon"]
    )
    assert args.runs == 2
    assert args.only == ("boot", "stress")
    assert args.workload == ("wp-errors", "anon")


@pytest.mark.parametrize(
    "argv", [["--runs", "0"], ["--only", "boot,nope"], ["--workload", "wp-errors"]]
)
def test_bench_subcommand_rejects_bad_values(argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench_parser().parse_args(["bench", *argv])
    assert e.value.code == 2


def test_console_watch_times_whole_lines(tmp_path: Path):
    log = tmp_path / "console.log"
    with bench_boot.ConsoleWatch(log, poll=0.01) as watch, log.open("wb", buffering=0) as f:
        f.write(b"[    0.05] tsc: first\nuffd-harness: ini")
        deadline = time.monotonic() + 10
        while not watch.lines and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [line for _, line in watch.lines] == ["[    0.05] tsc: first"]
        time.sleep(0.05)
        f.write(b"t started\r\n")
    texts = [line for _, line in watch.lines]
    assert texts == ["[    0.05] tsc: first", "uffd-harness: init started"]
    assert watch.first_output is not None
    assert watch.lines[1][0] - watch.lines[0][0] >= 0.05


def test_bare_initramfs_holds_only_busybox_and_the_trivial_init(tmp_path: Path):
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed")
    data = bench_boot.bare_initramfs(tmp_path / "bare.cpio").read_bytes()
    for name in (b"init\0", b"bin/busybox\0", b"bin/sh\0", b"dev/console\0"):
        assert name in data
    assert bench_boot.BARE_INIT in data
    assert b"dropbear" not in data
