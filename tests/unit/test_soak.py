"""`uffd-harness soak`: its tally and its usage errors (the boots themselves: a guest test
would be the soak; its figure is in the README)."""

import pytest

from harness.cli.main import main
from harness.cli.soak import Soak


def test_the_report_counts_failures_by_phase_with_the_first_error():
    s = Soak(boots=4, boot_seconds=[5.0, 6.0, 7.0])
    s.fail("boot", 2, "HarnessError: guest did not answer on SSH\nmore")
    s.fail("boot", 3, "HarnessError: later")
    s.fail("console", 4, "BUG: unable to handle page fault")
    text = s.report()
    assert text.splitlines()[0] == "soak: 4 boots, 3 failures"
    assert "boot        2  boot 2: HarnessError: guest did not answer on SSH" in text
    assert "console     1  boot 4: BUG: unable to handle page fault" in text
    assert "stop        0" in text
    assert "median 6.00 s, p95 7.00 s, max 7.00 s" in text


@pytest.mark.parametrize("boots", ["0", "-3"])
def test_a_count_of_boots_below_one_is_a_usage_error(boots, capsys):
    assert main(["soak", "--boots", boots]) == 2
    assert "--boots" in capsys.readouterr().err
