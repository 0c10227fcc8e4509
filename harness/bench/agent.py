"""The agent on the bench's first ready guest: its push, SSH round trips, the cheapest
passing workload (for the per-test overhead), and the stress workload's fault figures."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.bench.report import ProfileRow, cheapest_case, median, stress_rows
from harness.bench.run import Bench, timed

if TYPE_CHECKING:
    from harness.guest.guest import Guest

STRESS_MEMS = ("anon", "shmem", "hugetlb")


def agent_list(binary: Path) -> dict[str, list[str]]:
    """Workload -> memory types, from `uffd-agent list` run on the host (it is static)."""
    out = subprocess.run([str(binary), "list"], capture_output=True, text=True, check=True)
    return {w["name"]: list(w["mem"]) for w in json.loads(out.stdout)}


def agent_work(b: Bench, guest: Guest) -> None:
    """On the first ready guest: the push, the cheapest workload, and the stress figures."""
    from harness.agent.build import build_agent
    from harness.agent.session import AgentSession

    try:
        binary = build_agent()
        b.agent_names = agent_list(binary)
        t0 = time.monotonic()
        session = AgentSession(guest, binary)
        push = time.monotonic() - t0
    except Exception as e:  # noqa: BLE001 - reported; the other figures go on
        b.errors.append(f"agent on a ready guest: {type(e).__name__}: {e}")
        return
    size = binary.stat().st_size // 1024
    b.ssh_rows.append(ProfileRow(f"agent push ({size} KiB, sha256 checked in guest)", push))
    for label, cmd in (
        ("round trip, one exec (`/bin/busybox true`)", "/bin/busybox true"),
        ("round trip, the agent's exec (`uffd-agent list`)", "/tmp/uffd-agent list >/dev/null"),
        ("round trip, `dmesg -c` as the plugin runs it", "dmesg -c >/dev/null"),
    ):
        times = [timed(lambda cmd=cmd: guest.run(cmd, timeout=60)) for _ in range(3)]
        b.ssh_rows.append(ProfileRow(label, median(times), "n=3"))
    if b.case is None and "overhead" in b.sections:
        b.case = _probe_cheapest(b, session)
    if "stress" in b.sections:
        b.stress = measure_stress(b, session)


def _probe_cheapest(b: Bench, session: Any) -> tuple[str, str] | None:
    timeout = 900.0
    try:
        res = session.call(["suite", "--mem", "anon"], timeout)
    except Exception as e:  # noqa: BLE001
        b.errors.append(f"finding the cheapest workload: {type(e).__name__}: {e}")
        return None
    case = cheapest_case(res.data if isinstance(res.data, list) else [])
    if case:
        b.say("agent", f"cheapest workload on anon: {case[0]} --mem {case[1]}")
    return case


def measure_stress(b: Bench, session: Any) -> dict[str, Any]:
    names = b.agent_names or {}
    if "stress" not in names:
        return {"available": False, "reason": "the agent has no stress workload"}
    out: dict[str, Any] = {"available": True, "seconds": b.stress_seconds, "mems": {}}
    extra = ["--threads", str(b.stress_threads), "--seconds", str(b.stress_seconds)]
    for mem in STRESS_MEMS:
        if mem not in names["stress"]:
            out["mems"][mem] = {"error": f"stress does not support --mem {mem}"}
            continue
        b.say("stress", f"stress --mem {mem} {' '.join(extra)}")
        try:
            res = session.run("stress", mem, b.stress_seconds * 3 + 120.0, extra)
        except Exception as e:  # noqa: BLE001
            out["mems"][mem] = {"error": f"{type(e).__name__}: {e}"}
            continue
        data = res.data
        out["mems"][mem] = {
            "status": data.get("status"),
            "reason": data.get("reason", ""),
            "rows": stress_rows(data),
            "result": data,
        }
        if b.kselftest:
            out["mems"][mem]["selftest"] = _selftest_stress(b, session, mem)
    return out


def _selftest_stress(b: Bench, session: Any, mem: str) -> dict[str, Any] | None:
    """The kernel selftests' stress part on the same guest and memory type (a peer)."""
    from harness.kselftest.run import selftest_stress

    layout, binaries = b.kselftest
    b.say("stress", f"kernel selftest stress on {mem}")
    try:
        return selftest_stress(session.guest, layout, binaries, mem, 1800.0)
    except Exception as e:  # noqa: BLE001 - reported; the other figures go on
        b.errors.append(f"selftest stress on {mem}: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}"}
