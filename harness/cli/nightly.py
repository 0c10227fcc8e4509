"""`uffd-harness nightly MATRIX.yaml`: the uffd suite on every cell of kernels x guest
configurations, each cell a `uffd-harness run` of its own (a process per cell: one cell's
crash or hang cannot take another's results), into DIR/<cell>/, listed in DIR/index.json;
with --baseline, what changed per cell (harness/results/compare.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from harness import HarnessError, UsageError
from harness.cli.exits import EXIT_FAILED, interrupted_exit_code
from harness.cli.progress import Clock
from harness.host.cache import cache_root, file_sha256
from harness.kernel.image import KernelImage, inspect_kernel
from harness.results.compare import compare_nightly, nightly_text
from harness.settings.matrix import Cell, KernelEntry, load_matrix, shard
from harness.settings.schema import GUEST, as_flags

INDEX = "index.json"


def debian_kernel(flavour: str, boot: Path = Path("/boot")) -> Path:
    """The newest installed /boot/vmlinuz-<release> of a Debian flavour (amd64, cloud-amd64,
    rt-amd64), or of one exact release."""
    exact = boot / f"vmlinuz-{flavour}"
    if exact.is_file():
        return exact
    pattern = re.compile(rf"^vmlinuz-(\d+)\.(\d+)\.(\d+)-(\d+)-{re.escape(flavour)}$")
    found = sorted(
        (tuple(int(n) for n in m.groups()), p)
        for p in boot.glob("vmlinuz-*")
        if (m := pattern.match(p.name))
    )
    if not found:
        raise UsageError(
            f"debian: {flavour}: no installed kernel of that flavour in {boot}; install it "
            f"with `apt-get install linux-image-{flavour}`"
        )
    return found[-1][1]


def built_kernel(entry: KernelEntry, say: Clock) -> Path:
    """`kernel build` of a build spec, in a cache directory named by its inputs (the tree,
    the base, the fragments' and patches' contents): built once, then reused as is."""
    from harness.kernel.build import BZIMAGE, BuildRequest, build_kernel

    b = entry.build
    h = hashlib.sha256(json.dumps([b["src"], b["base"]]).encode())
    for f in [*b["fragments"], *b["patches"]]:
        h.update(Path(f).read_bytes())
    out = cache_root() / "nightly-kernels" / h.hexdigest()[:24]
    if (out / "uffd-harness-inputs").is_file() and (out / BZIMAGE).is_file():
        say("kernel", f"{entry.name}: built before from the same inputs: {out / BZIMAGE}")
        return out / BZIMAGE
    req = BuildRequest(
        Path(b["src"]),
        out,
        b["base"],
        [Path(f) for f in b["fragments"]],
        [Path(p) for p in b["patches"]],
    )
    built = build_kernel(req, lambda phase, text: say("kernel", f"{entry.name}: {phase}: {text}"))
    (out / "uffd-harness-inputs").write_text(json.dumps(b, indent=2) + "\n")
    return built


def resolve_kernel(entry: KernelEntry, say: Clock) -> KernelImage:
    if entry.kind == "path":
        return inspect_kernel(Path(entry.value))
    if entry.kind == "debian":
        return inspect_kernel(debian_kernel(entry.value))
    return inspect_kernel(built_kernel(entry, say))


def kernel_record(entry: KernelEntry, kernel: KernelImage) -> dict:
    from harness.kernel.info import kernel_config

    config = kernel_config(kernel)
    config_hash = (
        hashlib.sha256(
            "".join(f"{k}={v}\n" for k, v in sorted(config.items())).encode()
        ).hexdigest()
        if config is not None
        else None
    )
    return {
        "entry": entry.name,
        "kind": entry.kind,
        "path": str(kernel.path),
        "release": kernel.release,
        "sha256": file_sha256(kernel.path),
        "config_sha256": config_hash,
    }


def run_cell(
    cell: Cell, kernel: KernelImage, root: Path, args: argparse.Namespace, filt: str
) -> dict:
    out = root / cell.name
    settings = {**cell.config.settings, "kernel": str(kernel.path)}
    argv = [sys.executable, "-m", "harness", "run", *as_flags(settings, "cli", GUEST)]
    argv += ["--results", str(out), "--repeat", str(args.repeat)]
    expr = " and ".join(f"({e})" for e in (filt, args.filter) if e)
    if expr:
        argv += ["--", "-k", expr]
    t0 = time.monotonic()
    with (root / f"{cell.name}.log").open("w") as log:
        rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - t0
    counts = None
    if (out / "results.json").is_file():
        counts = json.loads((out / "results.json").read_text()).get("counts")
    return {
        "name": cell.name,
        "config": cell.config.name,
        "settings": cell.config.settings,
        "results": cell.name,
        "exit_code": rc,
        "counts": counts,
        "seconds": round(seconds, 1),
        "command": argv[2:],
    }


def write_index(root: Path, index: dict) -> None:
    tmp = root / f"{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    tmp.replace(root / INDEX)


def cmd_nightly(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    if args.repeat < 1:
        raise UsageError(f"--repeat {args.repeat}: expected a positive count")
    cells = matrix.cells()
    if args.shard:
        cells = shard(cells, args.shard)
    root = args.results or Path("results") / f"nightly-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    index: dict = {
        "matrix": str(matrix.path.resolve()),
        "shard": args.shard or "1/1",
        "filter": " and ".join(e for e in (matrix.filter, args.filter) if e),
        "repeat": args.repeat,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cells": [],
    }
    kernels: dict[str, KernelImage] = {}
    interrupted = False
    try:
        for n, cell in enumerate(cells, 1):
            try:
                if cell.kernel.name not in kernels:
                    kernels[cell.kernel.name] = resolve_kernel(cell.kernel, clock.say)
            except HarnessError as e:
                clock.say("nightly", f"[{n}/{len(cells)}] {cell.name}: kernel unusable: {e}")
                index["cells"].append({"name": cell.name, "error": f"kernel: {e}", "exit_code": 2})
                write_index(root, index)
                continue
            kernel = kernels[cell.kernel.name]
            clock.say("nightly", f"[{n}/{len(cells)}] {cell.name}: {kernel.release}")
            record = run_cell(cell, kernel, root, args, matrix.filter)
            record["kernel"] = kernel_record(cell.kernel, kernel)
            index["cells"].append(record)
            write_index(root, index)
            counts = record["counts"] or {}
            summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no results"
            clock.say(
                "nightly",
                f"[{n}/{len(cells)}] {cell.name}: exit {record['exit_code']} in "
                f"{record['seconds']:.0f} s ({summary})",
            )
    except KeyboardInterrupt:
        interrupted = True
    index["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_index(root, index)
    print(f"nightly: {len(index['cells'])} of {len(cells)} cells in {root}/{INDEX}")
    code = EXIT_FAILED if any(c["exit_code"] != 0 for c in index["cells"]) else 0
    text = ""
    if args.baseline:
        result = compare_nightly(load_index(args.baseline), index, args.baseline, root)
        text = nightly_text(result)
        (root / "comparison.txt").write_text(text)
        print(text, end="")
        code = EXIT_FAILED if result.regression else 0
    write_report(root, index, text)
    print(f"report: {root / 'report.html'}")
    return interrupted_exit_code() if interrupted else code


def write_report(root: Path, index: dict, comparison: str) -> None:
    """DIR/report.html: every cell's grid, failures and latencies, and the comparison."""
    from harness.results.html import Section, report_html
    from harness.results.record import TestRecord

    sections = []
    for cell in index["cells"]:
        path = root / cell["name"] / "results.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        records = [TestRecord(**t) for t in data["tests"]]
        sections.append(Section(cell["name"], records, data.get("meta", {}), root / cell["name"]))
    title = f"uffd-harness nightly {index['started']} ({len(index['cells'])} cells)"
    (root / "report.html").write_text(report_html(title, sections, comparison))


def load_index(root: Path) -> dict:
    try:
        return json.loads((root / INDEX).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{root}: no readable {INDEX} of a nightly run ({e})") from None


def cmd_merge(args: argparse.Namespace) -> int:
    """Shard directories -> one: the cells' result directories copied, one index."""
    import shutil

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    merged: dict | None = None
    for shard_dir in args.shards:
        index = load_index(shard_dir)
        for cell in index["cells"]:
            src = shard_dir / cell["name"]
            if src.is_dir():
                shutil.copytree(src, out / cell["name"], dirs_exist_ok=True)
            log = shard_dir / f"{cell['name']}.log"
            if log.is_file():
                shutil.copy2(log, out / log.name)
        if merged is None:
            merged = {**index, "shard": "merged", "cells": []}
        merged["cells"] += index["cells"]
    assert merged is not None
    names = [c["name"] for c in merged["cells"]]
    if len(set(names)) != len(names):
        raise UsageError(
            "the shards hold the same cell twice: were they run with different --shard?"
        )
    write_index(out, merged)
    print(f"merge: {len(names)} cells from {len(args.shards)} shards into {out}/{INDEX}")
    return 0


def add_nightly_parser(sub: argparse._SubParsersAction) -> None:
    n = sub.add_parser(
        "nightly",
        help="the suite on every kernel x guest configuration of a matrix; what changed",
        description="Run the uffd suite on each cell of MATRIX.yaml (kernels x guest "
        "configurations), each cell a `uffd-harness run` of its own into DIR/<cell>/, listed "
        "in DIR/index.json (kernel release, sha256, config hash, settings, counts, time). With "
        "--baseline, compare each cell with the same cell of an earlier run: exit 1 on any "
        "regression. Without it, exit 1 if any cell failed.",
    )
    n.add_argument("matrix", type=Path, metavar="MATRIX.yaml")
    n.add_argument("--results", type=Path, metavar="DIR", help="default results/nightly-<time>")
    n.add_argument("--baseline", type=Path, metavar="DIR", help="an earlier nightly's DIR")
    n.add_argument("--repeat", type=int, default=1, metavar="N", help="each case N times")
    n.add_argument("--shard", metavar="I/N", help="only every Nth cell from the Ith")
    n.add_argument("--filter", default="", metavar="EXPR", help="a pytest -k expression")
    n.set_defaults(func=cmd_nightly)
    m = sub.add_parser(
        "merge",
        help="merge the directories of a sharded nightly into one",
        description="Copy the cells of each shard's directory into OUT and write one index.",
    )
    m.add_argument("out", type=Path, metavar="OUT")
    m.add_argument("shards", type=Path, nargs="+", metavar="SHARD_DIR")
    m.set_defaults(func=cmd_merge)
