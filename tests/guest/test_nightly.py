"""A nightly on real guests (issue 13): the example two-cell matrix, again with --baseline
on the first run (no regression), and as two shards merged into one (the same cells, no
regression against the unsharded run)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import our_qemus, wait_gone

pytestmark = pytest.mark.timeout(900)
EXAMPLE = Path(__file__).parent.parent / "data" / "nightly" / "example.yaml"


def harness(*args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "harness", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=800)


def cells(root: Path) -> list[str]:
    return [c["name"] for c in json.loads((root / "index.json").read_text())["cells"]]


def test_a_two_cell_nightly_its_baseline_and_its_shards(tmp_path):
    before = set(our_qemus())
    first, second = tmp_path / "first", tmp_path / "second"
    proc = harness("nightly", EXAMPLE, "--results", first)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    index = json.loads((first / "index.json").read_text())
    assert [c["name"] for c in index["cells"]] == [
        "debian-amd64--default",
        "debian-amd64--one-node-one-cpu",
    ]
    for cell in index["cells"]:
        assert cell["exit_code"] == 0 and cell["counts"]["passed"] == 2, cell
        assert len(cell["kernel"]["sha256"]) == 64 and cell["kernel"]["release"]
    assert index["cells"][1]["settings"] == {"numa": 1, "smp": 1}

    proc = harness("nightly", EXAMPLE, "--results", second, "--baseline", first)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "NO REGRESSION: 0 of 2 cells regressed" in proc.stdout

    shards = [tmp_path / "s1", tmp_path / "s2"]
    for i, out in enumerate(shards, 1):
        proc = harness("nightly", EXAMPLE, "--results", out, "--shard", f"{i}/2")
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
        assert len(cells(out)) == 1
    merged = tmp_path / "merged"
    assert harness("merge", merged, *shards).returncode == 0
    assert cells(merged) == cells(first)
    proc = harness("compare", first, merged)
    assert proc.returncode == 0 and proc.stdout.startswith("NO REGRESSION: 0 of 2 cells")
    assert not wait_gone(set(our_qemus()) - before)
