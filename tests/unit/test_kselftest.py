"""`uffd-harness kselftest` without a guest: the output parsers on recorded outputs (real
6.1 ones and samples written from the newer sources and the KTAP spec), the verdicts
(exit codes, hangs, the known-issues list), the tree's layout and run_vmtests.sh's
arguments, the build's command and errors, the peers list and the side-by-side table."""

import shutil
from pathlib import Path

import pytest

from harness import UsageError
from harness.kselftest import build as ks_build
from harness.kselftest.parse import (
    interpret,
    parse_ktap,
    parse_legacy,
    parse_unit,
    stress_faults,
)
from harness.kselftest.peers import (
    agent_cases,
    find_peer,
    load_peers,
    make_row,
    sort_rows,
    table_text,
)
from harness.kselftest.run import (
    GuestFacts,
    hugepage_shortage,
    parse_probe,
    remote_command,
    selftest_result,
    wp_mremap_mem,
)
from harness.kselftest.tree import LEGACY_CASES, find_layout, half_size_mb, script_invocations
from harness.verdict.known_issues import load_known_issues
from harness.verdict.outcomes import verdict

DATA = Path(__file__).resolve().parents[1] / "data" / "kselftest"
AGENT_SRC = Path(__file__).resolve().parents[2] / "harness" / "agent" / "src" / "workloads"

#: run_vmtests.sh's userfaultfd lines, as 6.1's (vm/) and a newer tree's (mm/) have them.
VM_SCRIPT = """
uffd_mods=("" ":dev")
for mod in "${uffd_mods[@]}"; do
	run_test ./userfaultfd anon${mod} 20 16
	# Hugetlb tests require source and destination huge pages. Pass in half
	# the size ($half_ufd_size_MB), which is used for *each*.
	run_test ./userfaultfd hugetlb${mod} "$half_ufd_size_MB" 32
	run_test ./userfaultfd hugetlb_shared${mod} "$half_ufd_size_MB" 32 "$mnt"/uffd-test
	rm -f "$mnt"/uffd-test
	run_test ./userfaultfd shmem${mod} 20 16
done
"""
MM_SCRIPT = """
CATEGORY="userfaultfd" run_test ./uffd-unit-tests
uffd_stress_bin=./uffd-stress
CATEGORY="userfaultfd" run_test ${uffd_stress_bin} anon 20 16
adjustment=$(( (31 < (nr_cpus - 1)) ? 31 : (nr_cpus - 1) ))
half_ufd_size_MB=$((((freepgs - adjustment) * hpgsize_KB) / 1024 / 2))
CATEGORY="userfaultfd" run_test ${uffd_stress_bin} hugetlb "$half_ufd_size_MB" 32
CATEGORY="userfaultfd" run_test ${uffd_stress_bin} hugetlb-private "$half_ufd_size_MB" 32
CATEGORY="userfaultfd" run_test ${uffd_stress_bin} shmem 20 16
CATEGORY="userfaultfd" run_test ${uffd_stress_bin} shmem-private 20 16
if $have_all_size_hugepgs; then
	CATEGORY="userfaultfd" run_test ./uffd-wp-mremap
fi
"""


def data(name: str) -> str:
    return (DATA / name).read_text()


def by_name(cases) -> dict:
    return {c.name: c for c in cases}


# -- legacy (6.1's userfaultfd) ---------------------------------------------------------------


def test_legacy_real_anon_run_passes_every_case():
    text = data("vm-6.1-anon.txt")
    cases = interpret(parse_legacy(text), 0, text, LEGACY_CASES["anon"])
    assert [c.name for c in cases] == list(LEGACY_CASES["anon"])
    assert {c.status for c in cases} == {"pass"}
    assert "bounces: 0, mode: read" in by_name(cases)["stress"].output


def test_legacy_error_fails_that_case_and_the_rest_are_not_reached():
    text = data("vm-6.1-anon-zeropage-error.txt")
    cases = by_name(interpret(parse_legacy(text), 1, text, LEGACY_CASES["anon"]))
    assert cases["zeropage"].status == "fail"
    assert cases["zeropage"].reason.startswith("ERROR: zeropage is not zero")
    assert cases["pagemap-4k"].status == "pass"
    for name in ("sigbus", "events"):
        assert cases[name].status == "skip"
        assert "not reached" in cases[name].reason and "exit code 1" in cases[name].reason


def test_legacy_failure_by_exit_code_alone_fails_the_last_case():
    """6.1's events test returns non-zero when the fault count is off, printing nothing."""
    text = data("vm-6.1-anon-events-count.txt")
    cases = by_name(interpret(parse_legacy(text), 1, text, LEGACY_CASES["anon"]))
    assert cases["events"].status == "fail"
    assert "exit code 1" in cases["events"].reason
    assert cases["sigbus"].status == "pass"
    # The same output with exit 0 is a pass: the exit code decides, not the text.
    assert by_name(interpret(parse_legacy(text), 0, text))["events"].status == "pass"


def test_exit_code_4_is_a_skip_with_the_printed_reason():
    text = data("vm-6.1-no-userfaultfd.txt")
    cases = interpret(parse_legacy(text), 4, text, LEGACY_CASES["shmem"])
    assert {c.status for c in cases} == {"skip"}
    assert all("creating userfaultfd failed" in c.reason for c in cases)
    assert not any(c.status == "pass" for c in cases)


def test_hang_fails_the_running_case_and_skips_the_rest():
    text = data("vm-6.1-anon-hang.txt")
    cases = by_name(
        interpret(parse_legacy(text), None, text, LEGACY_CASES["anon"], "hang: no exit in 300 s")
    )
    assert cases["stress"].status == "fail"
    assert cases["stress"].reason.startswith("hang: no exit in 300 s")
    assert cases["events"].status == "skip" and "not reached: hang" in cases["events"].reason


def test_a_case_never_printed_is_a_skip_never_a_pass():
    """shmem's minor test runs only on a kernel with the feature, silently otherwise."""
    text = data("vm-6.1-anon.txt")
    cases = by_name(interpret(parse_legacy(text), 0, text, LEGACY_CASES["shmem"]))
    assert cases["minor"].status == "skip"
    assert "not printed" in cases["minor"].reason


def test_exit_0_without_any_case_is_a_failure():
    cases = interpret(parse_legacy("nr_pages: 5120\n"), 0, "nr_pages: 5120\n")
    assert [c.status for c in cases] == ["fail"]


def test_nonzero_exit_with_every_case_passed_still_fails():
    text = "Testing zeropage on anon... done\n"
    cases = interpret(parse_unit(text), 139, text)
    assert [c.status for c in cases] == ["fail"]
    assert "exit code 139" in cases[0].reason


def test_newer_uffd_stress_is_the_stress_part_alone():
    text = data("mm-uffd-stress-anon.txt")
    cases = interpret(parse_legacy(text), 0, text, ("stress",))
    assert [(c.name, c.status) for c in cases] == [("stress", "pass")]


# -- uffd-unit-tests ----------------------------------------------------------------------------


def test_unit_tests_cases_memory_types_and_reasons():
    text = data("mm-uffd-unit-tests-6.1-kernel.txt")
    parsed = parse_unit(text)
    assert not parsed.problems
    cases = interpret(parsed, 1, text)
    assert len(cases) == 66
    counts = {s: sum(c.status == s for c in cases) for s in ("pass", "skip", "fail")}
    assert counts == {"pass": 44, "skip": 21, "fail": 1}
    failed = [c for c in cases if c.status == "fail"][0]
    assert (failed.name, failed.mem) == ("wp-fork", "hugetlb-private")
    assert failed.reason == "Detected stall uffd-wp bit in child in present pte"
    move = next(c for c in cases if c.name == "move")
    assert (move.mem, move.status, move.reason) == ("anon", "skip", "feature missing")
    assert cases[0].name == "UFFDIO_API (with syscall)" and cases[0].mem is None


def test_unit_tests_count_line_that_disagrees_is_a_failure():
    text = data("mm-uffd-unit-tests-bad-count.txt")
    cases = interpret(parse_unit(text), 1, text)
    bad = [c for c in cases if c.name == "(output)"]
    assert len(bad) == 1 and bad[0].status == "fail"
    assert "pass=45" in bad[0].reason and "pass=44" in bad[0].reason


def test_unit_tests_error_exit_fails_the_case_in_progress():
    text = data("mm-uffd-unit-tests-err-exit.txt")
    cases = interpret(parse_unit(text), 1, text)
    last = cases[-1]
    assert (last.name, last.mem, last.status) == ("zeropage", "shmem", "fail")
    assert last.reason.startswith("ERROR: UFFDIO_ZEROPAGE error: -14")


# -- KTAP ---------------------------------------------------------------------------------------


def test_ktap_names_from_run_lines_skips_and_failures():
    text = data("mm-uffd-wp-mremap.ktap")
    parsed = parse_ktap(text)
    assert not parsed.problems
    cases = interpret(parsed, 1, text)
    assert len(cases) == 10
    assert [c.status for c in cases].count("pass") == 7
    skip = cases[2]
    assert skip.status == "skip" and skip.reason == "MADV_PAGEOUT did not work, is swap enabled?"
    assert skip.name.startswith("test_one_folio(size=4096, private=false, swapout=true")
    fail = cases[5]
    assert fail.status == "fail" and fail.reason == "uffd-wp not clear for pte 0!"
    assert fail.name == "test_one_folio(size=2097152, private=true, swapout=false, hugetlb=false)"
    assert wp_mremap_mem(fail.name) == "anon-thp"
    assert wp_mremap_mem(cases[8].name) == "hugetlb"


def test_ktap_nested_by_the_kselftest_runner_is_read_inside():
    cases = parse_ktap(data("mm-uffd-wp-mremap-nested.ktap")).cases
    assert len(cases) == 10 and cases[5].status == "fail"


def test_ktap_plan_not_met_and_missing_header():
    text = "TAP version 13\n1..3\nok 1 a\nnot ok 2 b # TIMEOUT 45 s\n"
    parsed = parse_ktap(text)
    assert [c.status for c in parsed.cases] == ["pass", "fail"]
    assert parsed.problems == ["the plan says 1..3; 2 results were printed"]
    assert any(c.status == "fail" and c.name == "(output)" for c in interpret(parsed, 0, text))
    assert parse_ktap("ok 1 a\n").problems


# -- verdicts through the known-issues list -----------------------------------------------------


def _case(status: str, name: str = "wp-fork", reason: str = "stall"):
    from harness.kselftest.parse import Case

    return Case(name, status, reason)


KSELFTEST_ISSUE = """
- workload: kselftest:uffd-unit-tests:wp-fork
  mem: hugetlb-private
  kernels: ["<6.4"]
  checks: [wp-fork]
  fix: "mm/hugetlb: fix uffd-wp during fork()"
  fix_commit: 5a2f8d22ace4
  looks_like: the newer selftests' view of the fork bug wp-fork-cow sees on hugetlb-private
"""


def test_a_known_issue_entry_explains_a_selftest_failure_on_its_kernels_only(tmp_path):
    # The shipped list holds reproduced bugs only; this entry is the shape one would take.
    (tmp_path / "known.yaml").write_text(KSELFTEST_ISSUE)
    issues = load_known_issues(tmp_path / "known.yaml")
    failed = selftest_result("uffd-unit-tests", "hugetlb-private", _case("fail"))
    assert verdict(failed, issues, "6.1.0-57-amd64").outcome == "xfailed"
    assert verdict(failed, issues, "6.6.0").outcome == "failed"
    passed = selftest_result("uffd-unit-tests", "hugetlb-private", _case("pass"))
    assert verdict(passed, issues, "6.1.0-57-amd64").outcome == "xpassed"
    other = selftest_result("uffd-unit-tests", "hugetlb", _case("fail"))
    assert verdict(other, issues, "6.1.0-57-amd64").outcome == "failed"
    skipped = selftest_result("userfaultfd", "anon", _case("skip", "minor", "feature missing"))
    v = verdict(skipped, issues, "6.1.0")
    assert (v.outcome, v.reason) == ("skipped", "feature missing")


# -- tree layout and run_vmtests.sh -------------------------------------------------------------


def fake_tree(root: Path, kind: str, script: str, sources: tuple[str, ...]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\n")
    (root / "Kbuild").write_text("")
    d = root / "tools/testing/selftests" / kind
    d.mkdir(parents=True)
    for s in sources:
        (d / s).write_text("int main(void) { return 0; }\n")
    (d / "run_vmtests.sh").write_text(script)
    return root


def test_vm_layout_runs_each_memory_type_with_the_scripts_arguments(tmp_path):
    src = fake_tree(tmp_path, "vm", VM_SCRIPT, ("userfaultfd.c", "vm_util.c"))
    layout = find_layout(src)
    assert (layout.kind, layout.version) == ("vm", "6.1.192")
    argvs = [inv.argv(128) for inv in layout.invocations]
    assert argvs == [
        ["./userfaultfd", "anon", "20", "16"],
        ["./userfaultfd", "hugetlb", "128", "32"],
        ["./userfaultfd", "hugetlb_shared", "128", "32", "/mnt/huge-2048kB/uffd-test"],
        ["./userfaultfd", "shmem", "20", "16"],
    ]
    assert [i.hugetlb for i in layout.invocations] == [False, True, True, False]
    assert layout.agent_mem("hugetlb") == "hugetlb-private"
    assert layout.agent_mem("hugetlb_shared") == "hugetlb"
    assert half_size_mb(VM_SCRIPT, nr_cpus=2, hpage_kb=2048, free_pages=128) == 128


def test_mm_layout_and_its_half_size_formula(tmp_path):
    sources = ("uffd-unit-tests.c", "uffd-stress.c", "uffd-wp-mremap.c", "uffd-common.c")
    src = fake_tree(tmp_path, "mm", MM_SCRIPT, (*sources, "vm_util.c", "thp_settings.c"))
    layout = find_layout(src)
    assert layout.kind == "mm"
    assert [(i.binary, i.mem, i.parser) for i in layout.invocations] == [
        ("uffd-unit-tests", "", "unit"),
        ("uffd-stress", "anon", "legacy"),
        ("uffd-stress", "hugetlb", "legacy"),
        ("uffd-stress", "hugetlb-private", "legacy"),
        ("uffd-stress", "shmem", "legacy"),
        ("uffd-stress", "shmem-private", "legacy"),
        ("uffd-wp-mremap", "", "ktap"),
    ]
    stress = layout.binaries[1]
    assert stress.sources == ("uffd-stress.c", "uffd-common.c", "vm_util.c", "thp_settings.c")
    assert half_size_mb(MM_SCRIPT, nr_cpus=2, hpage_kb=2048, free_pages=128) == 127
    assert layout.agent_mem("hugetlb") == "hugetlb"


def test_the_one_binary_selftest_in_6_3s_renamed_mm_directory(tmp_path):
    layout = find_layout(fake_tree(tmp_path, "mm", VM_SCRIPT, ("userfaultfd.c", "vm_util.c")))
    assert (layout.kind, layout.directory.name) == ("vm", "mm")
    assert layout.binaries[0].sources == ("userfaultfd.c", "vm_util.c")
    assert len(layout.invocations) == 4 and layout.agent_mem("hugetlb") == "hugetlb-private"


def test_script_invocations_once_each_without_the_dev_mod():
    assert len(script_invocations(VM_SCRIPT)) == 4


def test_not_a_kernel_tree_and_a_tree_without_uffd_selftests(tmp_path):
    with pytest.raises(UsageError, match="not a Linux kernel tree"):
        find_layout(tmp_path)
    with pytest.raises(UsageError, match="no such directory"):
        find_layout(tmp_path / "nope")
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n")
    (tmp_path / "Kbuild").write_text("")
    with pytest.raises(UsageError, match="has no userfaultfd selftests"):
        find_layout(tmp_path)


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from harness.cli.main import main

    assert main(["kselftest", "--src", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a Linux kernel tree" in err
    src = fake_tree(tmp_path / "t", "vm", VM_SCRIPT, ("userfaultfd.c",))
    assert main(["kselftest", "--src", str(src), "--mem-types", "anon,bogus"]) == 2
    assert "--mem-types bogus" in capsys.readouterr().err
    assert main(["kselftest"]) == 2
    # `run --with-kselftest`: checked before the suite runs.
    assert main(["run", "--with-kselftest"]) == 2
    assert "go together" in capsys.readouterr().err
    assert main(["run", "--with-kselftest", "--src", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_hugepage_shortage_says_what_to_give():
    from harness.kselftest.tree import Invocation

    inv = Invocation("userfaultfd", "hugetlb", ("hugetlb", "{half}", "32"), "legacy", hugetlb=True)
    facts = GuestFacts(nr_cpus=2, hpage_kb=2048, free_pages=100, nr_hugepages=100)
    why = hugepage_shortage(inv, facts, 128)
    assert why and "needs 128 free 2 MiB hugepages" in why and "--hugepages 2M:128" in why
    assert hugepage_shortage(inv, GuestFacts(2, 2048, 128, 128), 128) is None
    assert "no hugetlb" in hugepage_shortage(inv, GuestFacts(2, 0, 0, 0), 128)
    probe = "cpus 2\nHugePages_Free:      128\nHugepagesize:       2048 kB\npool 128\n"
    assert parse_probe(probe) == GuestFacts(2, 2048, 128, 128)


# -- build -------------------------------------------------------------------------------------


def test_compile_argv_is_static_with_the_trees_headers(tmp_path):
    src = fake_tree(tmp_path, "vm", VM_SCRIPT, ("userfaultfd.c", "vm_util.c"))
    layout = find_layout(src)
    argv = ks_build.compile_argv("cc", layout, layout.binaries[0].sources, Path("/h"), Path("/o"))
    assert argv[:2] == ["cc", "-static"]
    assert argv[argv.index("-isystem") : argv.index("-isystem") + 2] == ["-isystem", "/h"]
    assert argv[argv.index("-o") + 1] == "/o"
    assert str(layout.directory / "userfaultfd.c") in argv and "-lpthread" in argv


def test_cache_key_follows_the_sources(tmp_path):
    src = fake_tree(tmp_path, "vm", VM_SCRIPT, ("userfaultfd.c", "vm_util.c"))
    layout = find_layout(src)
    key = ks_build.cache_key(layout, "cc 12")
    assert key == ks_build.cache_key(layout, "cc 12")
    assert key != ks_build.cache_key(layout, "cc 13")
    (layout.directory / "vm_util.h").write_text("#define X 1\n")
    assert key != ks_build.cache_key(layout, "cc 12")


def test_build_failure_names_the_first_error_and_the_log(tmp_path, monkeypatch):
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    src = fake_tree(tmp_path / "src", "vm", VM_SCRIPT, ("vm_util.c",))
    (src / "tools/testing/selftests/vm/userfaultfd.c").write_text(
        "int main(void) { return undeclared_thing; }\n"
    )
    layout = find_layout(src)
    monkeypatch.setattr(ks_build, "_headers", lambda layout, scratch, log: tmp_path)
    with pytest.raises(ks_build.SelftestBuildError) as e:
        ks_build.build_selftests(layout, tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg and "undeclared_thing" in msg and "error:" in msg
    log = msg.rsplit("full log: ", 1)[1].rstrip(")")
    assert "undeclared_thing" in Path(log).read_text()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != "logs"]


def test_headers_failure_is_one_line(tmp_path):
    src = fake_tree(tmp_path / "src", "vm", VM_SCRIPT, ("userfaultfd.c", "vm_util.c"))
    with pytest.raises(ks_build.SelftestBuildError, match="uAPI headers") as e:
        ks_build.build_selftests(find_layout(src), tmp_path / "cache")
    assert "\n" not in str(e.value)


# -- peers and the side-by-side table -----------------------------------------------------------


def test_every_peer_is_an_agent_workload_and_every_legacy_case_is_listed():
    peers = load_peers()
    workloads = {p.stem.replace("_", "-") for p in AGENT_SRC.glob("*.c")}
    for peer in peers.values():
        for item in peer.agent:
            assert item.partition("@")[0] in workloads, (peer.selftest, item)
    for mem, cases in LEGACY_CASES.items():
        for case in cases:
            assert find_peer(peers, "userfaultfd", case), (mem, case)


def test_peer_lookup_memory_types():
    peers = load_peers()
    p = find_peer(peers, "uffd-wp-mremap", "test_one_folio(size=4096, private=true)")
    assert p and agent_cases(p, "anon") == [("wp-mremap", "anon")]
    thp = find_peer(peers, "userfaultfd", "pagemap-thp")
    assert agent_cases(thp, "anon") == [("wp-thp", "anon-thp")]
    assert agent_cases(find_peer(peers, "uffd-unit-tests", "move"), "anon") == []
    assert find_peer(peers, "userfaultfd", "no-such-case") is None


def test_rows_verdicts_and_disagreements_first():
    rows = [
        make_row("a", "passed", [("x@anon", "passed")]),
        make_row("b", "passed", [("stress@anon", "passed"), ("missing-copy@anon", "xfailed")]),
        make_row("c", "failed", [("y@anon", "skipped")]),
        make_row("d", "passed", []),
        make_row("e", "xfailed", [("wp-fork-cow@hugetlb-private", "xfailed")]),
        make_row("f", "failed", [("z@anon", "not run")]),
    ]
    assert [r.verdict for r in rows] == ["agree", "DISAGREE", "n/a", "no peer", "agree", "n/a"]
    assert [r.selftest for r in sort_rows(rows)] == ["b", "a", "e", "c", "f", "d"]
    text = table_text(rows)
    assert text.splitlines()[1].startswith("DISAGREE b")
    assert "1 disagree, 2 agree, 2 not comparable" in text
    # A selftest failure that our side passes is a disagreement too.
    assert make_row("g", "failed", [("x@anon", "passed")]).verdict == "DISAGREE"


def test_peers_file_is_checked():
    from harness import HarnessError

    with pytest.raises(HarnessError, match="entry 1"):
        load_peers("- selftest: a:b\n  agent: x\n  why: y\n")
    with pytest.raises(HarnessError, match="listed twice"):
        load_peers("- {selftest: a:b, agent: [], why: y}\n- {selftest: a:b, agent: [], why: y}\n")


def test_summary_table_and_exit_code_know_selftest_records():
    from harness.cli.kselftest import kselftest_exit_code
    from harness.results.formats import summary_text, to_kcidb
    from harness.results.record import TestRecord

    st = {"binary": "userfaultfd", "mem": "anon", "case": "stress"}
    ok = TestRecord("kselftest[userfaultfd:anon:stress]", "passed", 1.0, selftest=st)
    bad = TestRecord("kselftest[userfaultfd:shmem:stress]", "failed", 1.0, "ERROR: x")
    bad.selftest = {**st, "mem": "shmem"}
    text = summary_text([ok, bad])
    assert "userfaultfd:stress" in text.splitlines()[1] and "FAIL" in text
    assert '"uffd.kselftest.userfaultfd.anon.stress"' in to_kcidb([ok], {}, "r")
    assert kselftest_exit_code([ok], []) == 0
    assert kselftest_exit_code([ok, bad], []) == 1
    skipped = TestRecord("kselftest[x]", "skipped", 0.0, "no hugepages")
    assert kselftest_exit_code([skipped], []) == 1
    assert kselftest_exit_code([ok], [{"title": "BUG"}]) == 3


def test_remote_command_keeps_the_selftests_exit_code_after_its_cleanup(tmp_path):
    import subprocess

    scratch = tmp_path / "uffd-test"
    scratch.write_text("")
    argv = ["sh", "-c", "echo out; echo err >&2; exit 4"]
    cmd = remote_command(argv, str(scratch), str(tmp_path))
    # The harness wraps it in `CMD; rc=$?; ...; exit $rc` (harness.agent.session).
    proc = subprocess.run(["sh", "-c", f"{cmd}; rc=$?; exit $rc"], capture_output=True, text=True)
    assert proc.returncode == 4 and proc.stdout == "out\nerr\n"
    assert not scratch.exists()


# -- a selftest run against a fake guest: crashes, hangs, pools --------------------------------


class FakeConsole:
    def __init__(self, path: Path):
        self.path, self.text = path, ""

    def offset(self) -> int:
        return len(self.text)

    def read(self, start: int = 0, end: int | None = None) -> str:
        return self.text[start:end]


class FakeGuest:
    """Answers the selftest's command with a recorded output and exit code, optionally
    printing a kernel report on the console meanwhile, or never answering (a hang)."""

    def __init__(self, tmp: Path, output: str, code: int, console: str = "", hang: bool = False):
        from types import SimpleNamespace

        self.console = FakeConsole(tmp / "console.log")
        self.spec = SimpleNamespace(accel="tcg")

        self.output, self.code, self.crash, self.hang = output, code, console, hang
        self.stopped = False
        self.free = 10

    def alive(self) -> bool:
        return not self.stopped

    def reachable(self) -> bool:
        return not self.stopped

    def run(self, cmd: str, timeout: float, **kw):
        from harness.guest.ssh import CommandTimeout, RunResult

        if "nproc" in cmd:  # the pool probe: the pool never grows here
            probe = f"cpus 2\nHugePages_Free: {self.free}\nHugepagesize: 2048 kB\npool 10\n"
            return RunResult(0, probe.encode(), b"", 0.0)
        if "./userfaultfd" not in cmd:
            return RunResult(0, b"", b"", 0.0)
        self.console.text += self.crash
        if self.hang:
            raise CommandTimeout(cmd, timeout, self.output.encode(), b"")
        err = b"@@uffd-harness: dmesg@@\n[ 1.0] kernel log\n"
        return RunResult(self.code, self.output.encode(), err, 3.0)

    def hang_dump(self) -> str:
        return "sysrq: Show Blocked State\n"

    def push(self, local: Path, remote: str, mode: int = 0o644) -> str:
        return "sha"

    def stop(self) -> None:
        self.stopped = True

    def cleanup(self) -> None:
        pass


def fake_run(tmp_path: Path, guest: FakeGuest, mem: str = "anon", free_pages: int = 128):
    from harness.kselftest.run import KselftestRun, Options
    from harness.results.rundir import RunDir

    src = fake_tree(tmp_path / "src", "vm", VM_SCRIPT, ("userfaultfd.c", "vm_util.c"))
    layout = find_layout(src)
    run = RunDir(tmp_path / "results", {"kernel": {"release": "6.1.0-57-amd64"}}, "r")
    ks = KselftestRun(layout, Options({}, run.root, tmp_path), run, load_known_issues())
    ks.guest = guest  # type: ignore[assignment]
    ks.facts = GuestFacts(2, 2048, free_pages, free_pages)
    inv = next(i for i in layout.invocations if i.mem == mem)
    return ks, ks.run_invocation(inv)


def test_fake_guest_clean_run_records_every_case_with_its_files(tmp_path):
    ks, records = fake_run(tmp_path, FakeGuest(tmp_path, data("vm-6.1-anon.txt"), 0))
    assert [r.outcome for r in records] == ["passed"] * 6
    r = records[0]
    assert r.name == "kselftest[userfaultfd:anon:stress]"
    assert r.selftest["argv"] == ["./userfaultfd", "anon", "20", "16"]
    root = tmp_path / "results"
    assert "kernel log" in (root / r.dmesg).read_text()
    assert (root / r.selftest["output_file"]).read_text().startswith("nr_pages:")
    assert ks.guest is not None  # kept for the next run


def test_fake_guest_kernel_crash_fails_the_case_that_was_running(tmp_path):
    oops = (Path(__file__).parents[1] / "data/crashes/guest-6.1-lkdtm-bug.log").read_text()
    text = data("vm-6.1-anon-zeropage-error.txt")
    _, records = fake_run(tmp_path, FakeGuest(tmp_path, text, 1, console=oops))
    by = {r.selftest["case"]: r for r in records}
    assert by["zeropage"].outcome == "failed"
    assert by["zeropage"].reason == "kernel crash: kernel BUG in lkdtm_BUG"
    assert by["zeropage"].crashes[0]["title"] == "kernel BUG in lkdtm_BUG"
    assert by["stress"].outcome == "passed" and not by["stress"].crashes
    assert by["events"].outcome == "skipped"


def test_fake_guest_hang_is_cut_recorded_and_the_guest_replaced(tmp_path):
    guest = FakeGuest(tmp_path, data("vm-6.1-anon-hang.txt"), 0, hang=True)
    ks, records = fake_run(tmp_path, guest)
    by = {r.selftest["case"]: r for r in records}
    assert by["stress"].outcome == "failed" and by["stress"].reason.startswith("hang: no exit")
    assert by["sigbus"].outcome == "skipped" and "not reached: hang" in by["sigbus"].reason
    assert guest.stopped and ks.guest is None
    dump = tmp_path / "results/logs/kselftest-userfaultfd-anon.hang-dump.txt"
    assert "Blocked State" in dump.read_text()


def test_fake_guest_short_of_hugepages_skips_saying_what_to_give(tmp_path):
    guest = FakeGuest(tmp_path, "", 0)
    _, records = fake_run(tmp_path, guest, mem="hugetlb", free_pages=10)
    assert {r.outcome for r in records} == {"skipped"}
    assert "--hugepages 2M:128" in records[0].reason
    assert records[0].log_slice is None


def test_stress_faults_summed_over_the_bounces():
    text = data("mm-uffd-stress-anon.txt")
    faults = stress_faults(text)
    assert faults["missing"] == sum(
        [634, 990, 712, 560, 701, 790, 580, 680, 1200, 1020, 758, 706, 567, 520, 577, 75]
    )
    assert faults["minor"] == 0 and faults["wp"] > 0
    real = stress_faults(data("vm-6.1-anon.txt"))  # `\b)` in the real counts
    assert real["missing"] > 0 and real["wp"] > 0


def test_throughput_lines_pair_the_selftest_with_the_agent_stress():
    from harness.kselftest.peers import throughput_text
    from harness.results.record import TestRecord

    st = {"binary": "userfaultfd", "mem": "anon", "agent_mem": "anon", "case": "stress"}
    st |= {"faults": {"missing": 10, "wp": 30, "minor": 0}, "faults_per_second": 4.0}
    agent = {"workload": "stress", "mem": "anon", "latency_us": {"p50": 132.0, "p99": 2e4}}
    agent["rates"] = {"faults_per_s": {"missing": 273.5, "wp": 1958.4, "minor": 0.0}}
    records = [
        TestRecord("kselftest[userfaultfd:anon:stress]", "passed", 1.0, selftest=st),
        TestRecord("agent[stress-anon]", "passed", 1.0, agent=agent),
    ]
    text = throughput_text(records)
    assert "userfaultfd anon: 40 faults (missing 10, wp 30), 4.0/s" in text
    assert "agent stress@anon: missing 274/s, wp 1958/s, p50 132.0 us" in text
    assert throughput_text(records[1:]) == ""


def test_run_with_kselftest_joins_the_suites_results_dir_while_it_is_held(tmp_path, monkeypatch):
    """After `run`'s suite (whose session, in the same process, still holds the results
    directory), the selftests' records join its results.json and use its agent verdicts."""
    import json

    from harness.cli.kselftest import Prepared, run_with_kselftest
    from harness.kselftest import run as ks_run
    from harness.results.formats import to_json
    from harness.results.record import TestRecord
    from harness.results.rundir import lock_run_dir

    root = tmp_path / "results"
    held = lock_run_dir(root)  # as the suite's pytest session holds it
    agent = {"workload": "wp-basic", "mem": "anon", "status": "pass"}
    suite = [TestRecord("test_agent[wp-basic-anon]", "passed", 1.0, agent=agent)]
    (root / "results.json").write_text(to_json(suite, {"run_id": "r1", "kernel": {}}))
    seen = {}

    def fake(layout, opts, run, issues, known=None):
        seen["known"] = known
        st = {"binary": "userfaultfd", "mem": "anon", "agent_mem": "anon", "case": "zeropage"}
        record = TestRecord("kselftest[userfaultfd:anon:zeropage]", "failed", 1.0, selftest=st)
        run.add(record)
        run.flush()
        return ks_run.Outcome([record], [make_row("x", "failed", [("wp-basic@anon", "passed")])])

    monkeypatch.setattr(ks_run, "run_kselftests", fake)
    src = fake_tree(tmp_path / "src", "vm", VM_SCRIPT, ("userfaultfd.c",))
    prep = Prepared(find_layout(src), tmp_path, True, 0.1, ())
    assert run_with_kselftest(prep, {"guest_timeout": None}, root) == 1
    held.close()
    assert seen["known"] == {("wp-basic", "anon"): "passed"}
    data = json.loads((root / "results.json").read_text())
    assert [t["name"] for t in data["tests"]] == [
        "test_agent[wp-basic-anon]",
        "kselftest[userfaultfd:anon:zeropage]",
    ]
    assert data["meta"]["run_id"] == "r1" and data["meta"]["kselftest"]["layout"] == "vm"
    assert (root / "side-by-side.txt").read_text().startswith("         selftest case")


def test_bench_peer_the_selftests_stress_on_the_agents_memory_types(tmp_path, capsys):
    from harness.bench.report import render_stress
    from harness.cli.main import main
    from harness.kselftest.run import selftest_stress, stress_invocation

    src = fake_tree(tmp_path / "src", "vm", VM_SCRIPT, ("userfaultfd.c", "vm_util.c"))
    layout = find_layout(src)
    assert stress_invocation(layout, "hugetlb").mem == "hugetlb_shared"
    assert stress_invocation(layout, "hugetlb-private").mem == "hugetlb"
    assert stress_invocation(layout, "shmem-private") is None
    guest = FakeGuest(tmp_path, data("vm-6.1-anon.txt"), 0)
    st = selftest_stress(guest, layout, tmp_path, "anon", 60.0)
    assert st["argv"] == ["./userfaultfd", "anon", "20", "16"] and st["exit_code"] == 0
    assert st["faults"] == stress_faults(data("vm-6.1-anon.txt")) and st["lower_bound"]
    entry = {"status": "pass", "rows": [], "selftest": st}
    lines = render_stress({"available": True, "mems": {"anon": entry}})
    assert any("selftest `./userfaultfd anon 20 16`" in ln and "lower bound" in ln for ln in lines)
    failed = {"status": "pass", "rows": [], "selftest": {"error": "HarnessError: x"}}
    assert "selftest error" in render_stress({"available": True, "mems": {"anon": failed}})[-1]
    assert main(["bench", "--only", "boot", "--kselftest-src", str(src)]) == 2
    assert "keep stress in --only" in capsys.readouterr().err
