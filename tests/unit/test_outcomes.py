"""Verdicts a nightly job can trust: an agent result, the known-issues list and the
kernel's config -> the outcome reported."""

from harness.verdict.outcomes import verdict

PROBE_FAILED = {
    "workload": "wp-basic",
    "mem": "anon",
    "status": "skip",
    "reason": "userfaultfd unavailable: ENOSYS (kernel built without CONFIG_USERFAULTFD)",
    "probe_error": "ENOSYS",
    "checks": [],
}


def test_a_failed_probe_on_a_kernel_with_userfaultfd_is_a_failure():
    v = verdict(PROBE_FAILED, [], "6.1.0", {"USERFAULTFD": "y"})
    assert v.outcome == "failed"
    assert "probe failed (ENOSYS) on a kernel built with CONFIG_USERFAULTFD=y" in v.reason


def test_a_failed_probe_on_a_kernel_without_userfaultfd_is_a_skip_that_says_so():
    v = verdict(PROBE_FAILED, [], "6.1.0", {"MMU": "y"})
    assert v.outcome == "skipped"
    assert v.reason.startswith("kernel built without CONFIG_USERFAULTFD")


def test_a_failed_probe_with_an_unknown_config_is_a_failure():
    v = verdict(PROBE_FAILED, [], "6.1.0", None)
    assert v.outcome == "failed" and "config is unknown" in v.reason


def test_an_ordinary_skip_stays_a_skip():
    result = {**PROBE_FAILED, "reason": "needs UFFD_FEATURE_WP_ASYNC (6.7)"}
    del result["probe_error"]
    v = verdict(result, [], "6.1.0", {"USERFAULTFD": "y"})
    assert (v.outcome, v.reason) == ("skipped", "needs UFFD_FEATURE_WP_ASYNC (6.7)")


def test_a_pass_is_a_pass():
    result = {"workload": "wp-basic", "mem": "anon", "status": "pass", "checks": [{"ok": True}]}
    assert verdict(result, [], "6.1.0", {"USERFAULTFD": "y"}).outcome == "passed"
