"""`uffd-harness compare`: every kind of change between two results.json documents, the
verdict line, and the exit code a nightly job acts on."""

import json

import pytest

from harness.cli.main import main
from harness.results.compare import compare, comparison_text, verdict_line


def test(name, outcome, reason="", checks=(), crashes=()):
    agent = {"checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks]}
    return {
        "name": name,
        "outcome": outcome,
        "reason": reason,
        "agent": agent,
        "crashes": [{"kind": "oops", "title": t, "text": ""} for t in crashes],
    }


test.__test__ = False  # a builder, not a test


def run(*tests, release="6.1.0-57-amd64", session=()):
    return {
        "meta": {
            "kernel": {"release": release},
            "session_crashes": [{"title": t, "phase": "between tests"} for t in session],
        },
        "tests": list(tests),
    }


BASE = run(
    test("wp-basic-anon", "passed"),
    test("wp-swap-anon", "passed"),
    test("wp-thp-anon-thp", "passed"),
    test("gone-case", "passed"),
    test("broken-before", "failed", "x"),
    test("still-broken", "failed", "y", [("c", False, "got 1, want 0")]),
    test("fork-hugetlb-private", "xfailed", "known bug"),
    test("known-then-fixed", "xfailed", "known bug"),
    test("was-skipped", "skipped", "no swap"),
    test("same-skip", "skipped", "no 1G page"),
    test("oopsed", "failed", crashes=("BUG: old title",)),
)
NEW = run(
    test("wp-basic-anon", "failed", "1 check failed", [("wp-bit-set", False, "got 0, want 512")]),
    test("wp-swap-anon", "skipped", "no swap: kernel without CONFIG_SWAP"),
    test("wp-thp-anon-thp", "passed"),
    test("broken-before", "passed"),
    test("still-broken", "failed", "y", [("c", False, "got 1, want 0")]),
    test("fork-hugetlb-private", "xpassed", "the known bug no longer shows"),
    test("known-then-fixed", "passed"),
    test("was-skipped", "passed"),
    test("same-skip", "skipped", "no 1G page"),
    test("oopsed", "passed"),
    test("brand-new", "passed"),
    test("brand-new-broken", "error", "guest died"),
    release="6.1.0-58-amd64",
    session=("WARNING in mm/userfaultfd.c",),
)


def kinds(c) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ch in c.changes:
        out.setdefault(ch.kind, []).append(ch.case)
    return out


def test_every_kind_of_change_is_named():
    c = compare(BASE, NEW)
    assert kinds(c) == {
        "new-failure": ["wp-basic-anon", "brand-new-broken"],
        "new-skip": ["wp-swap-anon"],
        "missing": ["gone-case"],
        "fixed": ["broken-before", "oopsed"],
        "still-failing": ["still-broken"],
        "known-bug-changed": ["fork-hugetlb-private"],
        "known-bug-gone": ["known-then-fixed"],
        "now-runs": ["was-skipped"],
        "new-case": ["brand-new"],
        "new-crash": ["WARNING in mm/userfaultfd.c"],
        "crash-gone": ["BUG: old title"],
    }
    assert c.unchanged == 2  # wp-thp-anon-thp, same-skip
    failure = c.of("new-failure")[0]
    assert failure.detail == "wp-bit-set (got 0, want 512)"  # the failing checks
    assert c.of("new-crash")[0].detail == "in between tests"


def test_the_report_starts_with_the_verdict():
    text = comparison_text(compare(BASE, NEW))
    first = text.splitlines()[0]
    assert first.startswith("REGRESSION: 2 new failures, 1 known bugs that changed state, ")
    assert "1 new skips, 1 cases no longer run, 1 new kernel crash titles" in first
    assert first.endswith("(base 6.1.0-57-amd64 -> new 6.1.0-58-amd64)")
    assert "  wp-swap-anon: passed -> skipped: no swap: kernel without CONFIG_SWAP" in text
    assert "  gone-case: passed -> -: in the base run, not in the new one" in text


def test_a_run_against_itself_is_no_regression():
    c = compare(BASE, BASE)
    assert not c.regressions
    assert verdict_line(c).startswith("NO REGRESSION: 3 still failing; 8 unchanged")


@pytest.mark.parametrize(
    ("before", "after", "regression"),
    [
        ("passed", "failed", True),
        ("passed", "error", True),
        ("passed", "skipped", True),
        ("passed", "xfailed", True),  # now fails the way a known bug does: still worse
        ("xfailed", "xpassed", True),
        ("failed", "passed", False),
        ("skipped", "passed", False),
        ("xfailed", "passed", False),
        ("passed", "passed", False),
    ],
)
def test_which_outcome_moves_are_regressions(before, after, regression):
    c = compare(run(test("t", before)), run(test("t", after)))
    assert bool(c.regressions) is regression


def test_the_command_exits_1_on_a_regression_0_otherwise_2_on_bad_input(tmp_path, capsys):
    for name, data in (("base", BASE), ("new", NEW)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(data))
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new")]) == 1
    assert capsys.readouterr().out.startswith("REGRESSION: ")
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "base")]) == 0
    assert capsys.readouterr().out.startswith("NO REGRESSION: ")
    assert main(["compare", "--json", str(tmp_path / "base"), str(tmp_path / "new")]) == 1
    assert json.loads(capsys.readouterr().out)["regression"] is True
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "nowhere")]) == 2
    assert "no results.json there" in capsys.readouterr().err


def test_repeated_runs_compare_as_one_case_and_flaky_is_a_regression():
    def runs(*outcomes):
        return run(
            *(
                {
                    **test(f"test_agent[wp-basic-anon~{i}]", o),
                    "agent": {"workload": "wp-basic", "mem": "anon", "checks": []},
                }
                for i, o in enumerate(outcomes, 1)
            )
        )

    c = compare(runs("passed", "passed"), runs("passed", "failed", "passed"))
    assert [(ch.kind, ch.case, ch.base, ch.new) for ch in c.changes] == [
        ("new-failure", "wp-basic:anon", "passed", "flaky")
    ]
    assert not compare(runs("passed", "passed"), runs("passed")).changes
