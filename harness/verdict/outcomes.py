"""An agent result plus the known-issues list -> the outcome the harness reports."""

from dataclasses import dataclass

from harness.verdict.known_issues import KnownIssue, match

#: How a skip for a kernel without userfaultfd begins.
NO_USERFAULTFD = "kernel built without CONFIG_USERFAULTFD"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # passed, failed, skipped, xfailed, xpassed
    reason: str
    known: KnownIssue | None = None


def failed_checks(result: dict) -> list[dict]:
    return [c for c in result.get("checks", []) if not c.get("ok")]


def describe_failure(result: dict) -> str:
    lines = [f"{result.get('workload')} on {result.get('mem')}: {result.get('reason', '')}"]
    lines += [f"  FAILED {c['name']}: {c.get('detail', '')}" for c in failed_checks(result)]
    return "\n".join(lines)


def known_reason(issue: KnownIssue) -> str:
    commit = f" ({issue.fix_commit})" if issue.fix_commit else ""
    return f'known kernel bug, fixed upstream by "{issue.fix}"{commit}'


def probe_verdict(result: dict, config: dict[str, str] | None) -> Verdict | None:
    """The agent could not open a userfaultfd at all (it skips, saying why): a skip only
    when the kernel's config says it has no userfaultfd; a failure when the config says it
    has one, or when the config is unknown (a validation run must not pass on a guess)."""
    error = result.get("probe_error")
    if not error:
        return None
    reason = result.get("reason", "")
    if config is None:
        return Verdict(
            "failed",
            f"userfaultfd probe failed ({error}); the kernel's config is unknown: {reason}",
        )
    if config.get("USERFAULTFD") != "y":
        return Verdict("skipped", f"{NO_USERFAULTFD} ({reason})")
    return Verdict(
        "failed",
        f"userfaultfd probe failed ({error}) on a kernel built with CONFIG_USERFAULTFD=y: {reason}",
    )


def verdict(
    result: dict,
    issues: list[KnownIssue],
    kernel_release: str,
    config: dict[str, str] | None = None,
) -> Verdict:
    """pass/fail/skip from the agent, reinterpreted through the known-issues list and the
    kernel's config (None: unknown).

    A failure is expected only when a listed issue explains every failed check; a listed
    case that passes is an unexpected pass, so a fixed bug is noticed and delisted.
    """
    workload, mem, status = result.get("workload", ""), result.get("mem", ""), result.get("status")
    probed = probe_verdict(result, config)
    if probed:
        return probed
    if status == "skip":
        return Verdict("skipped", result.get("reason") or "skipped without a reason")
    if status == "pass":
        listed = match(issues, workload, mem, kernel_release)
        if listed:
            return Verdict("xpassed", f"passed, but listed as a {known_reason(listed)}", listed)
        return Verdict("passed", "")
    names = [c["name"] for c in failed_checks(result)]
    known = match(issues, workload, mem, kernel_release, names) if names else None
    if known:
        return Verdict("xfailed", f"{known_reason(known)}: {', '.join(names)}", known)
    return Verdict("failed", describe_failure(result))
