"""Every check can fail, proven where the checks run (issue 11, point 6).

tests/agent proves the agent's checks on the host kernel, where hugetlb pools, swap and
newer uffd features may be missing, so checks recorded only there were never proven. Here
`uffd-agent prove` runs in a guest that has them all: for each workload, on every memory
type it lists, one exec runs the workload plainly and then once per check with that
check's expectation perturbed (--inject-fail); the check is proven when that run fails
with exactly that check failed, marked perturbed.

Cost (harness/verdict/proof.py): a check name is proven once per workload, on the cheapest
memory type that records it; the types after it still run plainly and prove the names only
they record (hugetlb alignment, alias views, shared children...). That is ~1,100 agent
runs, 6-6.5 min under TCG on 2 shared CPUs (load 4-7). Re-proving every name on every
type would run each workload ~30 times per type: proving them all once more on hugetlb
alone (the HUGETLB_APART classes) measured 230 s more, and as much again per further type.
"""

from collections import defaultdict

import pytest

from harness.agent.session import AgentSession
from harness.suite.test_agent import agent_cases
from harness.verdict.known_issues import load_known_issues
from harness.verdict.proof import Proof, mem_order

#: Arguments that keep a workload short where its default suits a suite, not a proof loop.
EXTRA_ARGS = {"stress": ["--seconds", "1"]}
#: Memory-type classes whose names are proven apart (see harness/verdict/proof.py); none:
#: each name once per workload.
PROOF_CLASSES: dict[str, str] = {}
#: A proof is one plain run plus one per check, each under the agent's own watchdog; the
#: call's limit is a backstop for a guest that stops answering.
CALL_TIMEOUT_FACTOR = 4


def listed_mems() -> dict[str, list[str]]:
    mems: dict[str, list[str]] = defaultdict(list)
    for workload, mem in agent_cases():
        mems[workload].append(mem)
    return {w: mem_order(m) for w, m in mems.items()}


LISTED = listed_mems()


@pytest.mark.parametrize("workload", sorted(LISTED))
def test_every_check_is_proven_in_the_guest(
    workload: str, agent: AgentSession, guest_timeout: float, request: pytest.FixtureRequest
):
    proof = Proof(workload, load_known_issues(), agent.guest.kernel.release, PROOF_CLASSES)
    for mem in LISTED[workload]:
        args = proof.args(mem) + EXTRA_ARGS.get(workload, [])
        proof.add(mem, agent.call(args, guest_timeout * CALL_TIMEOUT_FACTOR).data)
    request.node.user_properties.append(("prove", proof.summary()))
    print(proof.summary())
    print("  proven:", " ".join(f"{name}@{mem}" for name, mem in sorted(proof.proven.items())))
    problems = proof.all_problems()
    assert not problems, f"{workload}:\n" + "\n".join(problems)
    if not proof.ran():
        pytest.skip(f"{workload} runs on no memory type here: {'; '.join(proof.skipped)}")
