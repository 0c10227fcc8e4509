"""`uffd-harness repro`: the report on recorded iterations, and bad input in one line."""

from pathlib import Path

import pytest

from harness.cli.main import main
from harness.results.repro import Iteration, Repro, report

DATA = Path(__file__).parent.parent / "data" / "repro"


def test_the_report_names_the_first_failure_its_iteration_and_the_console():
    r = Repro("wp-basic:anon", guests=2)
    r.iterations = [
        Iteration(1, "pass", 1.0),
        Iteration(2, "pass", 3.0),
        Iteration(3, "crash", 2.0, "lost", ["BUG: unable to handle page fault"], "a\nb\nlast"),
        Iteration(4, "fail", 2.0, "wp-bit-kept: got 0, want 512"),
    ]
    text = report(r, excerpt_lines=2)
    lines = text.splitlines()
    assert lines[0] == (
        "REPRODUCED: wp-basic:anon: 2 of 4 iterations failed, first at iteration 3 (crash)"
    )
    assert "  iteration 3: crash [BUG: unable to handle page fault]: lost" in lines
    assert "  iteration 4: fail: wp-bit-kept: got 0, want 512" in lines
    assert "run time (4 iterations): min 1.00 s, median 2.00 s, p95 3.00 s, max 3.00 s" in text
    assert text.endswith("console, iteration 3 (last 2 lines):\n  b\n  last\n")


def test_all_passed_and_all_skipped_say_so():
    passed = Repro("x:anon", [Iteration(1, "pass", 1.0)], guests=1)
    assert report(passed).startswith("NOT REPRODUCED: x:anon: 1 iterations, all passed")
    skipped = Repro("x:anon", [Iteration(1, "skip", 0.1, "no swap")], guests=1)
    assert report(skipped).startswith("SKIP: x:anon cannot run here: no swap")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wp-basic:anon", "--repeat", "0"], "--repeat 0: expected a whole number >= 1"),
        (["wp-basic:anno"], "not an agent case (WORKLOAD:MEM) nor a .c reproducer; close: "),
        ([str(DATA / "broken.c")], "broken.c does not compile: "),
        (["/nowhere/x.c"], "no such reproducer source"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    assert main(["repro", "--results", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    if "broken" in args[0]:
        assert "undeclared_thing" in err and "full log: " in err
