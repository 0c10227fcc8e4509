"""The guest agent: a static build cached by content, and its CLI contract on this host.

Not in tests/unit: compiling the agent and running every workload's self-test modes on the
host kernel takes most of a minute, and the unit tests must stay quick.

The host runs the same agent the guests do, so the workloads' JSON shape and the agent's
self-test modes are checked here: every check of every workload must be able to fail.
"""

import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from harness.agent import build
from harness.agent.build import (
    CFLAGS,
    SRC_DIR,
    AgentBuildError,
    build_agent,
    cache_key,
    compiler_inputs,
    default_cache_dir,
)
from harness.verdict.known_issues import load_known_issues
from harness.verdict.proof import Proof, mem_order

MEM_TYPES = {
    "anon",
    "anon-thp",
    "shmem",
    "shmem-private",
    "hugetlb",
    "hugetlb-private",
    "hugetlb-1g",
}
WORKLOADS = {
    "wp-basic",
    "wp-dontwake",
    "wp-fork-cow",
    "wp-mprotect",
    "wp-swap",
    "wp-swap-protect",
    "wp-fork-swap",
    "wp-fork-released",
    "wp-swapoff",
    "wp-migrate",
    "wp-numa-migrate",
    "wp-force-write",
    "wp-private-file",
    "wp-zap",
    "wp-thp",
    "wp-thp-split",
    "wp-collapse",
    "wp-mremap",
    "wp-unregister",
    "wp-errors",
    "wp-unpopulated",
    "wp-async",
    "minor-basic",
    "minor-private",
    "minor-anon-rejected",
    "minor-fallocate",
    "continue-errors",
    "continue-dontwake",
    "continue-wp",
    "missing-copy",
    "missing-zeropage",
    "missing-dontwake",
    "fill-contract",
    "api",
    "detach",
    "events",
    "sigbus",
    "stress",
}
CLASSIC_TYPES = {"anon", "shmem", "shmem-private", "hugetlb", "hugetlb-private"}
# Arguments that keep a workload short where its default suits a suite, not a test loop.
EXTRA_ARGS = {"stress": ["--seconds", "1"]}
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_SKIP = 0, 1, 2, 4


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(build.compiler()) is None:
        pytest.skip(f"no C compiler {build.compiler()!r}")
    return tmp_path_factory.mktemp("agent-cache")


@pytest.fixture(scope="module")
def agent(cache_dir: Path) -> Path:
    return build_agent(cache_dir)


def run_agent(agent: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(agent), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def run_json(agent: Path, *args: str) -> tuple[int, dict]:
    extra = EXTRA_ARGS.get(args[0], []) if "--seconds" not in args else []
    proc = run_agent(agent, "run", *args, *extra)
    assert proc.returncode != EXIT_USAGE, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def failed_checks(result: dict) -> list[str]:
    return [c["name"] for c in result["checks"] if not c["ok"]]


# --- the build ------------------------------------------------------------------------


def test_rebuild_with_unchanged_sources_is_a_cache_hit(agent: Path, cache_dir: Path):
    start = time.monotonic()
    again = build_agent(cache_dir)
    assert again == agent
    assert time.monotonic() - start < 2.0
    # Built in a temporary entry and renamed: the binary and its recorded hash, nothing else.
    assert sorted(p.name for p in agent.parent.iterdir()) == ["SHA256SUMS", "uffd-agent"]
    assert os.access(agent, os.X_OK)


def test_a_damaged_cached_agent_is_rebuilt_not_used(
    agent: Path, cache_dir: Path, capsys: pytest.CaptureFixture
):
    good = agent.read_bytes()
    with agent.open("r+b") as f:  # one flipped byte, as a bad disk or a stray write leaves
        f.seek(len(good) // 2)
        f.write(bytes([good[len(good) // 2] ^ 0xFF]))
    again = build_agent(cache_dir)
    assert again == agent and agent.read_bytes() == good
    assert "is damaged (uffd-agent does not match its recorded sha256); rebuilding" in (
        capsys.readouterr().err
    )


def test_agent_is_statically_linked(agent: Path):
    data = agent.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "expected a 64-bit ELF"
    # ELF64 header: e_phoff at 0x20, e_phentsize and e_phnum at 0x36.
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    assert 3 not in types, "the agent has a PT_INTERP: it is dynamically linked"


def test_cache_key_covers_sources_compiler_and_flags(tmp_path: Path):
    src = tmp_path / "src"
    shutil.copytree(SRC_DIR, src)
    key = cache_key(src, "cc 1.0")
    assert key == cache_key(src, "cc 1.0")
    assert key != cache_key(src, "cc 1.1")
    assert key != cache_key(src, "cc 1.0", (*CFLAGS, "-g"))
    main = src / "core" / "main.c"
    main.write_text(main.read_text() + "\n")
    edited = cache_key(src, "cc 1.0")
    assert edited != key
    # Where a file lives is part of the tree too: the same bytes moved is another key.
    (src / "workloads" / "detach.c").rename(src / "core" / "detach.c")
    assert cache_key(src, "cc 1.0") != edited


def test_default_cache_dir_honours_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "uffd-harness" / "agent"


def test_compile_failure_reports_the_compiler_output_and_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    fake_cc = tmp_path / "fake-cc"
    fake_cc.write_text(
        "#!/bin/sh\n"
        '[ "$1" = --version ] && { echo "fake-cc 1.0"; exit 0; }\n'
        'echo "/usr/bin/ld: cannot find -lc: No such file or directory" >&2\n'
        "exit 1\n"
    )
    fake_cc.chmod(0o755)
    monkeypatch.setenv("CC", str(fake_cc))
    cache = tmp_path / "cache"
    with pytest.raises(AgentBuildError) as err:
        build_agent(cache)
    message = str(err.value)
    assert "building the guest agent failed" in message
    assert "cannot find -lc" in message
    assert "apt-get install gcc libc6-dev" in message
    assert not [p for p in cache.rglob("*") if p.is_file()], "a failed build left files behind"


def test_missing_compiler_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(AgentBuildError, match="apt-get install gcc libc6-dev"):
        build_agent(tmp_path / "cache")


def test_fallback_uapi_definitions_build_without_system_headers(cache_dir: Path):
    # AGENT_OWN_UAPI ignores <linux/userfaultfd.h> and <linux/fs.h>: the fallbacks alone
    # must be complete and match the kernel ABI (uapi.h asserts the struct sizes).
    cc = build.compiler()
    proc = subprocess.run(
        [cc, "-fsyntax-only", "-DAGENT_OWN_UAPI", "-Wall", "-Werror", "-pthread"]
        + compiler_inputs(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# --- the CLI contract ---------------------------------------------------------------------


def test_list_names_every_workload_with_its_memory_types(agent: Path):
    proc = run_agent(agent, "list")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert {w["name"] for w in listed} == WORKLOADS
    assert len(listed) == len(WORKLOADS)
    for w in listed:
        assert set(w) == {"name", "mem", "summary"}
        assert w["mem"] and set(w["mem"]) <= MEM_TYPES, w
        assert w["summary"]
    by_name = {w["name"]: set(w["mem"]) for w in listed}
    assert by_name["wp-thp"] == {"anon-thp"}
    assert by_name["wp-thp-split"] == {"anon-thp"}
    assert by_name["wp-collapse"] == {"anon-thp", "shmem"}
    assert by_name["wp-mremap"] == CLASSIC_TYPES | {"anon-thp"}
    assert by_name["wp-zap"] == {"shmem", "hugetlb", "hugetlb-1g"}
    assert by_name["minor-basic"] == {"shmem", "hugetlb", "hugetlb-1g"}
    assert by_name["minor-private"] == {"shmem-private", "hugetlb-private"}
    assert by_name["minor-anon-rejected"] == {"anon", "anon-thp"}
    assert by_name["api"] == {"anon"}  # memory-independent
    assert by_name["wp-migrate"] == CLASSIC_TYPES | {"anon-thp"}
    assert by_name["wp-numa-migrate"] == CLASSIC_TYPES | {"anon-thp"}
    assert by_name["wp-fork-released"] == {"shmem"}
    assert by_name["wp-force-write"] == {"anon", "anon-thp"}
    assert by_name["wp-private-file"] == {"shmem-private", "hugetlb-private"}
    # anon-thp: the first touch of a PMD takes do_huge_pmd_anonymous_page()'s MISSING path
    assert by_name["missing-copy"] == CLASSIC_TYPES | {"anon-thp"}
    for name in (
        "missing-zeropage",
        "missing-dontwake",
        "fill-contract",
        "detach",
        "events",
        "sigbus",
        "stress",
    ):
        assert by_name[name] == CLASSIC_TYPES, name


def test_every_workload_has_one_source_file_named_after_it(agent: Path):
    listed = {w["name"] for w in json.loads(run_agent(agent, "list").stdout)}
    files = {p.stem.replace("_", "-") for p in (SRC_DIR / "workloads").glob("*.c")}
    assert files == listed


def test_features_describe_this_kernel(agent: Path):
    proc = run_agent(agent, "features")
    assert proc.returncode == 0, proc.stderr
    f = json.loads(proc.stdout)
    assert f["kernel"]["release"] == os.uname().release
    uffd = f["userfaultfd"]
    assert isinstance(uffd["available"], bool)
    assert all(isinstance(name, str) for name in uffd["features"])
    assert isinstance(uffd["dev_userfaultfd"], bool)
    assert isinstance(f["pagemap_scan"], bool)
    for pool in f["hugepages"]:
        assert {"size_kb", "total", "free", "reserved"} <= set(pool)
    assert {"enabled", "pmd_size"} <= set(f["thp"])
    assert isinstance(f["swap"]["active"], bool)
    assert set(f["mem_types"]) == MEM_TYPES
    for info in f["mem_types"].values():
        assert info["available"] or info["reason"]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "wp-basic"],
        ["run", "no-such-workload", "--mem", "anon"],
        ["run", "wp-basic", "--mem", "no-such-mem"],
        ["run", "wp-basic", "--mem", "anon", "--pages", "many"],
        ["run", "wp-thp", "--mem", "anon"],
        ["run", "minor-basic", "--mem", "anon"],
        ["run", "stress", "--mem", "anon", "--seconds", "0"],
        ["run", "wp-basic", "--mem", "anon", "--sabotage", "nonsense"],
        ["suite", "--pages", "4"],
        ["run", "wp-basic", "--mem", "anon", "--filter", "wp-*"],
        ["prove", "wp-basic"],
        ["prove", "wp-thp", "--mem", "anon"],
        ["prove", "wp-basic", "--mem", "anon", "--inject-fail", "setup-uffd"],
        ["prove", "wp-basic", "--mem", "anon", "--sabotage", "no-protect"],
        ["run", "wp-basic", "--mem", "anon", "--known-failing", "setup-uffd"],
        ["suite", "--skip-proven", "setup-uffd"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(agent: Path, args: list[str]):
    proc = run_agent(agent, *args)
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr
    assert not proc.stdout


def uffd_result(agent: Path, *args: str) -> dict:
    code, result = run_json(agent, *args)
    if result["status"] == "skip":
        pytest.skip(f"{' '.join(args)}: {result['reason']}")
    assert code == {"pass": EXIT_PASS, "fail": EXIT_FAIL}[result["status"]]
    return result


def test_run_reports_one_json_object(agent: Path):
    r = uffd_result(agent, "wp-basic", "--mem", "anon", "--pages", "16", "--threads", "2")
    assert r["status"] == "pass", r["reason"]
    assert (r["workload"], r["mem"]) == ("wp-basic", "anon")
    assert r["faults"] == {"wp": 16, "missing": 0, "minor": 0}
    lat = r["latency_us"]
    assert lat["samples"] == 16 and 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert r["duration_s"] > 0
    assert r["params"]["pages"] == 16 and r["params"]["threads"] == 2
    for check in r["checks"]:
        assert set(check) == {"name", "ok", "detail"} and check["ok"], check


def test_suite_prints_a_json_array_then_the_counts(agent: Path):
    proc = run_agent(agent, "suite", "--filter", "wp-errors:anon")
    body, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    results = json.loads(body)
    assert [(r["workload"], r["mem"]) for r in results] == [("wp-errors", "anon")]
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "skip")}
    assert last == f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    assert proc.returncode == (EXIT_FAIL if counts["fail"] else EXIT_PASS)


# --- every check can fail -----------------------------------------------------------------


def listed_mems(agent: Path) -> dict[str, list[str]]:
    return {w["name"]: w["mem"] for w in json.loads(run_agent(agent, "list").stdout)}


def passing_run(agent: Path, workload: str) -> tuple[str, dict]:
    """The workload's run on the first memory type this host can give it (anon first)."""
    mems = sorted(listed_mems(agent)[workload], key=lambda m: m != "anon")
    reasons = []
    for mem in mems:
        code, result = run_json(agent, workload, "--mem", mem)
        if result["status"] == "skip":
            reasons.append(f"{mem}: {result['reason']}")
            continue
        assert result["status"] == "pass" and code == EXIT_PASS, (mem, result["reason"])
        return mem, result
    pytest.skip(f"{workload} skips on every memory type here: {'; '.join(reasons)}")


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_every_check_fails_when_its_expectation_is_perturbed(agent: Path, workload: str):
    # `uffd-agent prove` on each memory type this host can give (tests/guest/test_prove.py
    # does the same in a guest that has them all): each check name is proven once, on the
    # first type in proof order that records it (harness/verdict/proof.py).
    proof = Proof(workload, load_known_issues(), os.uname().release)
    for mem in mem_order(listed_mems(agent)[workload]):
        proc = run_agent(agent, *proof.args(mem), *EXTRA_ARGS.get(workload, []), timeout=600)
        assert proc.returncode != EXIT_USAGE, proc.stderr
        proof.add(mem, json.loads(proc.stdout))
    problems = proof.all_problems()
    assert not problems, f"{workload}:\n" + "\n".join(problems)
    if not proof.ran():
        pytest.skip(f"{workload} runs nowhere here: {'; '.join(proof.skipped)}")


def prove(agent: Path, *args: str) -> tuple[int, dict]:
    proc = run_agent(agent, "prove", *args)
    assert proc.returncode != EXIT_USAGE, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_prove_runs_once_plainly_then_once_per_check(agent: Path):
    code, p = prove(agent, "wp-errors", "--mem", "anon")
    if p["status"] == "skip":
        pytest.skip(p["reason"])
    assert code == EXIT_PASS and p["status"] == "pass", p["reason"]
    assert (p["workload"], p["mem"], p["plain"]["status"]) == ("wp-errors", "anon", "pass")
    names = [c["name"] for c in p["plain"]["checks"]]
    assert [c["name"] for c in p["checks"]] == names
    assert all(c["proven"] is True and "perturbed" in c["reason"] for c in p["checks"]), p
    assert p["runs"] == len(names) + 1
    assert p["counts"] == {"proven": len(names), "not_proven": 0, "known_failing": 0, "skipped": 0}


def test_prove_skips_checks_proven_elsewhere_and_proves_known_ones_that_pass(agent: Path):
    _, first = prove(agent, "wp-errors", "--mem", "anon")
    if first["status"] == "skip":
        pytest.skip(first["reason"])
    a, b, c = (ch["name"] for ch in first["checks"][:3])
    code, p = prove(
        agent, "wp-errors", "--mem", "anon", "--skip-proven", f"{a},{b}", "--known-failing", c
    )
    assert code == EXIT_PASS and p["status"] == "pass", p["reason"]
    by_name = {ch["name"]: ch for ch in p["checks"]}
    assert by_name[a]["proven"] is None and by_name[b]["proven"] is None
    assert "proven elsewhere" in by_name[a]["reason"]
    # Known to fail on some kernel, but it passed here: it is proven like any other.
    assert by_name[c]["proven"] is True
    assert p["runs"] == len(first["checks"]) - 1
    assert p["counts"]["skipped"] == 2


def test_inject_fail_of_an_unknown_check_is_a_failure(agent: Path):
    code, result = run_json(agent, "wp-errors", "--mem", "anon", "--inject-fail", "no-such-check")
    if result["status"] == "skip":
        pytest.skip(result["reason"])
    assert code == EXIT_FAIL
    assert "no-such-check" in result["reason"]


def test_skipping_the_protect_fails_the_checks_that_measure_it(agent: Path):
    # Not a perturbed expectation: the kernel state really differs, and the measuring
    # checks must notice it.
    r = uffd_result(agent, "wp-basic", "--mem", "anon", "--sabotage", "no-protect")
    assert r["status"] == "fail"
    failed = failed_checks(r)
    assert {"wp-bit-set-after-protect", "one-wp-fault-per-page"} <= set(failed), failed
    assert not any("perturbed" in c["detail"] for c in r["checks"])


def test_a_stalled_handler_times_out_naming_the_phase(agent: Path):
    start = time.monotonic()
    r = uffd_result(
        agent, "wp-basic", "--mem", "anon", "--sabotage", "stall-handler", "--timeout", "2"
    )
    assert time.monotonic() - start < 10
    assert r["status"] == "fail"
    assert r["reason"].startswith("timed out in write"), r["reason"]


def test_stress_reports_rates_and_latency_by_fault_kind(agent: Path):
    start = time.monotonic()
    r = uffd_result(agent, "stress", "--mem", "anon", "--seconds", "1", "--threads", "2")
    assert r["status"] == "pass", r["reason"]
    assert 1 <= time.monotonic() - start < 30
    rates = r["rates"]
    assert rates["bounces"] >= 1 and rates["seconds"] >= 1
    assert set(rates["faults_per_s"]) == set(rates["latency_us"]) == {"missing", "wp", "minor"}
    assert rates["faults_per_s"]["missing"] > 0
    # Both printed to 3 decimals: the product matches the count only approximately.
    fps = rates["faults_per_s"]["missing"]
    assert fps * rates["seconds"] == pytest.approx(r["faults"]["missing"], rel=0.01, abs=2)
    for lat in rates["latency_us"].values():
        assert lat is None or 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert rates["latency_us"]["missing"]["samples"] > 0
    assert r["params"]["seconds"] == 1 and r["params"]["threads"] == 2


def test_stress_catches_a_misplaced_page(agent: Path):
    # A real corruption, not a perturbed expectation: page 1 is filled from page 0.
    r = uffd_result(
        agent, "stress", "--mem", "anon", "--seconds", "1", "--sabotage", "misplace-copy"
    )
    assert r["status"] == "fail"
    assert {"pages-in-place", "counters-match-after-bounce"} <= set(failed_checks(r)), r["reason"]
    assert not any("perturbed" in c["detail"] for c in r["checks"])


def test_the_watchdog_allows_for_seconds(agent: Path):
    r = uffd_result(agent, "stress", "--mem", "anon", "--seconds", "2", "--timeout", "1")
    assert r["status"] == "pass", r["reason"]


def test_known_issues_name_real_workloads_and_checks(agent: Path):
    listed = listed_mems(agent)
    for issue in load_known_issues():
        assert issue.mem in listed.get(issue.workload, []), issue.source
        # The check names must be ones the workload really records (run where it runs here).
        _, result = passing_run(agent, issue.workload)
        names = {c["name"] for c in result["checks"]}
        assert set(issue.checks) <= names, (issue.source, set(issue.checks) - names)
