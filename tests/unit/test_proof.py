"""`uffd-agent prove` outputs over a workload's memory types -> proven, tolerated, problems
(harness/verdict/proof.py), on hand-made agent JSON."""

import pytest

from harness.verdict.known_issues import KnownIssue
from harness.verdict.proof import HUGETLB_APART, MEM_ORDER, Proof, mem_order

BUG = KnownIssue(
    workload="wp-x",
    mem="hugetlb-private",
    kernels=("6.1",),
    fix="mm: fix it",
    looks_like="it breaks",
    checks=("child-bit-clear",),
)


def check(name: str, ok: bool = True) -> dict:
    return {"name": name, "ok": ok, "detail": "got 1, want 1"}


def proof_json(mem: str, plain: list[dict], proven: dict[str, object], status="pass") -> dict:
    return {
        "workload": "wp-x",
        "mem": mem,
        "plain": {
            "workload": "wp-x",
            "mem": mem,
            "status": status,
            "reason": "",
            "checks": plain,
        },
        "checks": [{"name": n, "proven": p, "reason": "why"} for n, p in proven.items()],
    }


def skip_json(mem: str, reason: str) -> dict:
    return {
        "plain": {"workload": "wp-x", "mem": mem, "status": "skip", "reason": reason, "checks": []}
    }


def new_proof(release: str = "6.1.0-56-amd64") -> Proof:
    return Proof("wp-x", [BUG], release)


def test_mem_order_is_cheapest_first_and_keeps_unknown_types_last():
    assert mem_order(["hugetlb-1g", "anon-thp", "new-type", "anon"]) == [
        "anon",
        "anon-thp",
        "hugetlb-1g",
        "new-type",
    ]
    assert MEM_ORDER[0] == "anon" and MEM_ORDER[-1] == "hugetlb-1g"


def test_names_proven_on_one_type_are_skipped_on_the_next():
    p = new_proof()
    assert p.args("anon") == ["prove", "wp-x", "--mem", "anon"]
    p.add("anon", proof_json("anon", [check("a"), check("b")], {"a": True, "b": True}))
    assert p.args("hugetlb") == ["prove", "wp-x", "--mem", "hugetlb", "--skip-proven", "a,b"]
    p.add(
        "hugetlb",
        proof_json(
            "hugetlb",
            [check("a"), check("b"), check("align")],
            {"a": None, "b": None, "align": True},
        ),
    )
    assert p.all_problems() == []
    assert p.proven == {"a": "anon", "b": "anon", "align": "hugetlb"}
    assert p.per_mem == {"anon": 2, "hugetlb": 1}
    assert p.ran()
    assert p.summary() == "wp-x: 3 checks proven (anon 2, hugetlb 1)"


def test_each_class_proves_its_names_again():
    p = Proof("wp-x", [], "6.1.0", classes=HUGETLB_APART)
    p.add("anon", proof_json("anon", [check("a")], {"a": True}))
    assert p.args("shmem")[-2:] == ["--skip-proven", "a"]
    assert "--skip-proven" not in p.args("hugetlb")
    p.add("hugetlb", proof_json("hugetlb", [check("a")], {"a": True}))
    assert p.args("hugetlb-1g")[-2:] == ["--skip-proven", "a"]
    p.add("hugetlb-1g", proof_json("hugetlb-1g", [check("a"), check("b")], {"a": None}))
    assert p.proven == {"a": "anon"} and p.proofs() == 2
    assert p.summary().startswith("wp-x: 1 checks proven (2 counting each class apart)")
    # b, recorded on hugetlb-1g, was proven in no class that has it.
    assert p.never_proven() == ["hugetlb-1g: b"]


@pytest.mark.parametrize(
    ("plain", "proven", "problem"),
    [
        # A perturbed run that did not fail the check.
        (["a", "b"], {"a": True, "b": False}, "anon: not proven: b: why"),
        # A check the plain run recorded that the agent left out of its proofs.
        (["a", "b"], {"a": True}, "recorded by a passing run, never proven: anon: b"),
        (["a", "a"], {"a": True}, "anon: duplicate check names: a"),
    ],
)
def test_problems(plain: list[str], proven: dict, problem: str):
    p = new_proof()
    p.add("anon", proof_json("anon", [check(n) for n in plain], proven))
    assert p.all_problems() == [problem]


def test_a_known_bug_is_passed_on_and_its_checks_tolerated():
    p = new_proof()
    args = p.args("hugetlb-private")
    assert args[-2:] == ["--known-failing", "child-bit-clear"]
    plain = [check("a"), check("child-bit-clear", ok=False)]
    p.add(
        "hugetlb-private",
        proof_json("hugetlb-private", plain, {"a": True, "child-bit-clear": None}, status="fail"),
    )
    assert p.all_problems() == []
    assert set(p.tolerated) == {"child-bit-clear"}
    assert p.summary().endswith("a known kernel bug fails them: child-bit-clear")
    # Proven on another type, it is no longer listed as unproven.
    p.add("anon", proof_json("anon", [check("child-bit-clear")], {"child-bit-clear": True}))
    assert "known kernel bug" not in p.summary()


def test_the_same_failure_on_a_fixed_kernel_is_a_problem():
    p = new_proof(release="6.5.0")
    assert "--known-failing" not in p.args("hugetlb-private")
    plain = [check("a"), check("child-bit-clear", ok=False)]
    p.add("hugetlb-private", proof_json("hugetlb-private", plain, {}, status="fail"))
    (problem,) = p.all_problems()
    assert problem.startswith("hugetlb-private: the plain run failed")
    assert "FAILED child-bit-clear" in problem


def test_a_workload_that_skips_everywhere_did_not_run():
    p = new_proof()
    p.add("anon", skip_json("anon", "no swap"))
    p.add("shmem", skip_json("shmem", "no swap"))
    assert not p.ran() and p.all_problems() == []
    assert p.skipped == ["anon: no swap", "shmem: no swap"]


def test_output_without_a_plain_run_is_a_problem():
    p = new_proof()
    p.add("anon", [1, 2])
    assert p.all_problems()[0].startswith("anon: prove printed no proof")
