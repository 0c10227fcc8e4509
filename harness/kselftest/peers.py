"""The side-by-side table: each selftest case, its verdict, and the verdicts of the agent
workloads that check the same behaviour (the reviewed list in peers.yaml). Pure."""

from dataclasses import dataclass
from importlib import resources

import yaml

from harness import HarnessError

#: Outcome (harness.results.record.OUTCOMES) -> what it says about the kernel. A known
#: kernel bug (xfailed) is still a failure seen; an XPASS is a pass.
SIDE = {
    "passed": "pass",
    "xpassed": "pass",
    "failed": "fail",
    "xfailed": "fail",
    "error": "fail",
    "skipped": "skip",
}


@dataclass(frozen=True)
class Peer:
    selftest: str  # BINARY:CASE
    agent: tuple[str, ...]  # WORKLOAD or WORKLOAD@MEM
    why: str


def load_peers(text: str | None = None) -> dict[str, Peer]:
    """peers.yaml (or `text`), checked entry by entry."""
    if text is None:
        text = resources.files("harness.kselftest").joinpath("peers.yaml").read_text()
    data = yaml.safe_load(text) or []
    if not isinstance(data, list):
        raise HarnessError("peers.yaml: expected a list of entries")
    peers: dict[str, Peer] = {}
    for i, entry in enumerate(data, 1):
        if not isinstance(entry, dict) or set(entry) != {"selftest", "agent", "why"}:
            raise HarnessError(f"peers.yaml entry {i}: expected keys selftest, agent, why")
        key, agent = str(entry["selftest"]), entry["agent"]
        if ":" not in key or not isinstance(agent, list):
            raise HarnessError(f"peers.yaml entry {i}: selftest is BINARY:CASE, agent a list")
        if key in peers:
            raise HarnessError(f"peers.yaml entry {i}: {key} listed twice")
        peers[key] = Peer(key, tuple(str(a) for a in agent), str(entry["why"]))
    return peers


def find_peer(peers: dict[str, Peer], binary: str, case: str) -> Peer | None:
    """The entry for a case: by its full name, else by its name up to a `(` (uffd-wp-mremap
    names each case `test_one_folio(size=..., ...)`)."""
    return peers.get(f"{binary}:{case}") or peers.get(f"{binary}:{case.split('(')[0].strip()}")


def agent_cases(peer: Peer | None, agent_mem: str | None) -> list[tuple[str, str]]:
    """(workload, memory type) of a case's peers; those needing a memory type the case has
    no counterpart of are left out."""
    if peer is None:
        return []
    out = []
    for item in peer.agent:
        workload, _, mem = item.partition("@")
        mem = mem or agent_mem or ""
        if mem:
            out.append((workload, mem))
    return out


@dataclass
class Row:
    selftest: str  # "userfaultfd anon: events"
    selftest_outcome: str
    agent: list[tuple[str, str]]  # ("events@anon", outcome or "not run")
    verdict: str  # "DISAGREE", "agree", "n/a", "no peer"


def combine(outcomes: list[str]) -> str:
    """The agent side of a row: fail if any peer failed, else pass if any passed."""
    sides = [SIDE.get(o, "skip") for o in outcomes]
    if "fail" in sides:
        return "fail"
    return "pass" if "pass" in sides else "skip"


def make_row(selftest: str, outcome: str, agent: list[tuple[str, str]]) -> Row:
    if not agent:
        return Row(selftest, outcome, agent, "no peer")
    ours, theirs = combine([o for _, o in agent]), SIDE.get(outcome, "skip")
    verdict = "n/a" if "skip" in (ours, theirs) else "agree" if ours == theirs else "DISAGREE"
    return Row(selftest, outcome, agent, verdict)


ORDER = {"DISAGREE": 0, "agree": 1, "n/a": 2, "no peer": 3}


def sort_rows(rows: list[Row]) -> list[Row]:
    """Disagreements first, then agreements, cases one side could not run, cases with no
    peer; stable within each group."""
    return sorted(rows, key=lambda r: ORDER[r.verdict])


def table_text(rows: list[Row]) -> str:
    rows = sort_rows(rows)
    if not rows:
        return "side by side: no selftest case ran\n"
    width = max(len(r.selftest) for r in rows) + 2
    lines = [f"{'':9}{'selftest case'.ljust(width)}{'selftest':10}agent peers"]
    for r in rows:
        peers = ", ".join(f"{name} {outcome}" for name, outcome in r.agent) or "-"
        lines.append(f"{r.verdict:9}{r.selftest.ljust(width)}{r.selftest_outcome:10}{peers}")
    counts = {v: sum(r.verdict == v for r in rows) for v in ORDER}
    lines.append(
        f"\n{counts['DISAGREE']} disagree, {counts['agree']} agree, {counts['n/a']} not "
        f"comparable (a side skipped or did not run), {counts['no peer']} with no agent peer"
    )
    return "\n".join(lines) + "\n"


def throughput_text(records: list) -> str:
    """Fault round trips, the selftests' stress part beside the agent's `stress` workload on
    the same memory type and guest: faults per second (and the agent's latency)."""
    agent = {
        r.agent.get("mem"): r.agent
        for r in records
        if r.agent and r.agent.get("workload") == "stress" and r.agent.get("rates")
    }
    lines = []
    for r in records:
        st = r.selftest or {}
        if st.get("case") != "stress" or not st.get("faults"):
            continue
        f = st["faults"]
        kinds = ", ".join(f"{k} {n}" for k, n in f.items() if n)
        lines.append(
            f"{st['binary']} {st['mem']}: {sum(f.values())} faults ({kinds or 'none'}), "
            f"{st.get('faults_per_second')}/s over the binary's run"
        )
        peer = agent.get(st.get("agent_mem"))
        if peer:
            rates = peer["rates"].get("faults_per_s") or {}
            lat = peer.get("latency_us") or {}
            per = ", ".join(f"{k} {v:.0f}/s" for k, v in rates.items() if v)
            lines.append(
                f"  agent stress@{peer.get('mem')}: {per or 'no faults'}, "
                f"p50 {lat.get('p50', '?')} us, p99 {lat.get('p99', '?')} us"
            )
    return "\n".join(lines) + "\n" if lines else ""
