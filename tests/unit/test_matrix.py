"""Nightly matrices: YAML in (errors name file:line), cells and shards out; the per-cell
comparison of two nightly runs; Debian kernels found by flavour."""

import json
from pathlib import Path

import pytest

from harness import UsageError
from harness.cli.nightly import debian_kernel
from harness.results.compare import compare_nightly, nightly_text
from harness.settings.matrix import load_matrix, shard

EXAMPLE = Path(__file__).parent.parent / "data" / "nightly" / "example.yaml"


def test_the_example_matrix_has_two_cells():
    m = load_matrix(EXAMPLE)
    assert [c.name for c in m.cells()] == [
        "debian-amd64--default",
        "debian-amd64--one-node-one-cpu",
    ]
    assert m.configs[1].settings == {"numa": 1, "smp": 1}
    assert m.filter == "wp-basic and anon"


def test_kernel_kinds_and_relative_paths(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "kernels:\n"
        "  - path: build/min/arch/x86/boot/bzImage\n"
        "  - name: bug\n"
        "    build: {src: src, fragments: [a.config], patches: [x.patch]}\n"
        "configs:\n  - name: c\n"
    )
    m = load_matrix(tmp_path / "m.yaml")
    path, built = m.kernels
    assert (path.name, path.kind, path.value) == (
        "min",
        "path",
        str(tmp_path / "build/min/arch/x86/boot/bzImage"),
    )
    assert built.build == {
        "src": str(tmp_path / "src"),
        "base": "tinyconfig",
        "fragments": [str(tmp_path / "a.config")],
        "patches": [str(tmp_path / "x.patch")],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kernels: []\n", "m.yaml:1: kernels: a non-empty list"),
        ("kernels:\n  - {path: a, debian: amd64}\n", "m.yaml:2: a kernel needs exactly one of"),
        (
            "kernels:\n  - debian: amd64\nconfigs:\n  - name: c\n    settings: {mem: lots}\n",
            "m.yaml:4: mem 'lots'",
        ),
        (
            "kernels:\n  - debian: amd64\nconfigs:\n  - name: c\n    settings: {memory: 3G}\n",
            "m.yaml:4: unknown guest setting 'memory'",
        ),
        ("kernels:\n  - debian: amd64\n  - debian: amd64\n", "repeated: debian-amd64"),
        ("kernels: [\n", "malformed matrix"),
        ("kernel:\n  - debian: amd64\n", "unknown keys ['kernel']"),
    ],
)
def test_bad_matrices_name_the_place(tmp_path, text, message):
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_matrix(tmp_path / "m.yaml")


def test_shards_split_the_cells_evenly_and_cover_them_once():
    cells = list(range(6))  # any list of cells
    parts = [shard(cells, f"{i}/4") for i in range(1, 5)]
    assert parts == [[0, 4], [1, 5], [2], [3]]
    assert sorted(sum(parts, [])) == cells
    assert shard(cells, "1/1") == cells
    with pytest.raises(UsageError, match="expected I/N"):
        shard(cells, "5/4")


def test_debian_kernels_by_flavour_newest_first(tmp_path):
    for name in ("6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-10-cloud-amd64", "6.1.0-10-rt-amd64"):
        (tmp_path / f"vmlinuz-{name}").write_bytes(b"")
    assert debian_kernel("amd64", tmp_path).name == "vmlinuz-6.1.0-10-amd64"
    assert debian_kernel("cloud-amd64", tmp_path).name == "vmlinuz-6.1.0-10-cloud-amd64"
    assert debian_kernel("6.1.0-9-amd64", tmp_path).name == "vmlinuz-6.1.0-9-amd64"
    with pytest.raises(UsageError, match="apt-get install linux-image-arm64"):
        debian_kernel("arm64", tmp_path)


def cell_dir(root: Path, name: str, tests: list[dict]) -> dict:
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps({"meta": {}, "tests": tests}))
    return {"name": name, "results": name, "exit_code": 0}


def test_nightly_comparison_judges_each_cell_and_lost_cells(tmp_path):
    ok = {"name": "t", "outcome": "passed", "agent": {"workload": "w", "mem": "anon"}}
    bad = {
        **ok,
        "outcome": "failed",
        "agent": {**ok["agent"], "checks": [{"name": "zero-fill", "ok": False, "detail": "d"}]},
    }
    base = {"cells": [cell_dir(tmp_path / "b", n, [ok]) for n in ("a", "b", "gone")]}
    new = {
        "cells": [
            cell_dir(tmp_path / "n", "a", [ok]),
            cell_dir(tmp_path / "n", "b", [bad]),
            cell_dir(tmp_path / "n", "fresh", [ok]),
            {"name": "broken", "error": "kernel: no such file", "exit_code": 2},
        ]
    }
    result = compare_nightly(base, new, tmp_path / "b", tmp_path / "n")
    assert [(c.name, c.regression) for c in result.cells] == [
        ("a", False),
        ("b", True),
        ("fresh", False),
        ("broken", True),
        ("gone", True),
    ]
    text = nightly_text(result)
    assert text.startswith("REGRESSION: 3 of 5 cells regressed")
    assert "  w:anon: passed -> failed: zero-fill (d)" in text
    assert "REGRESSION: not judged: kernel: no such file" in text
    assert "REGRESSION: in the baseline, not run now" in text
