"""Every agent workload on every memory type it applies to, one test each, in one guest.

A case listed in harness/known_issues.yaml for the booted kernel is a strict xfail that
only a failure the list explains satisfies: any other failure fails, and a pass is
reported as XPASS (strict), so the list stays honest.
"""

import itertools

import pytest

from harness.agent.build import agent_cases
from harness.results.record import REPEAT_MARK
from harness.suite.plugin import reproduce_command, session_kernel, session_settings
from harness.verdict.known_issues import load_known_issues, match
from harness.verdict.outcomes import describe_failure, known_reason, verdict

pytestmark = pytest.mark.guest


class KnownKernelBug(AssertionError):
    """The failure a known-issues entry describes."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    release = session_kernel(metafunc.config).release
    issues = load_known_issues()
    repeat = int(session_settings(metafunc.config)["repeat"])  # type: ignore[call-overload]
    params = []
    for (workload, mem), run in itertools.product(agent_cases(), range(1, repeat + 1)):
        listed = match(issues, workload, mem, release)
        marks = (
            [
                pytest.mark.xfail(
                    strict=True,
                    raises=KnownKernelBug,
                    reason=f"{known_reason(listed)}: {listed.looks_like}",
                )
            ]
            if listed
            else []
        )
        case_id = f"{workload}-{mem}" + (f"{REPEAT_MARK}{run}" if repeat > 1 else "")
        params.append(pytest.param((workload, mem), marks=marks, id=case_id))
    metafunc.parametrize("case", params)


def test_agent(case, agent, guest_timeout, guest_pool, request):
    workload, mem = case
    args = ["run", workload, "--mem", mem]
    # The limit this test ran under, so the line still means it if the default changes.
    settings = {**guest_pool.settings, "guest_timeout": guest_timeout}
    repro = reproduce_command(settings, agent.guest.kernel.path, args)
    request.node.user_properties.append(("reproduce", repro))
    res = agent.run(workload, mem, guest_timeout)
    result = res.data
    request.node.user_properties.append(("agent", result))
    config = guest_pool.kernel_config(agent.guest.kernel)
    v = verdict(result, load_known_issues(), agent.guest.kernel.release, config)
    if v.outcome == "skipped":
        pytest.skip(v.reason)
    if v.outcome == "xfailed":
        raise KnownKernelBug(f"{v.reason}\n{describe_failure(result)}")
    if v.outcome == "failed":
        pytest.fail(v.reason, pytrace=False)
    assert res.exit_code == 0, f"agent passed but exited {res.exit_code}"
