"""`uffd-harness compare BASE NEW`: what changed between two runs, regression or not."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import UsageError
from harness.results.compare import (
    compare,
    compare_nightly,
    comparison_json,
    comparison_text,
    nightly_text,
)

EXIT_REGRESSION = 1


def _load(path: Path) -> dict:
    file = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no results.json there; give a results directory of `uffd-harness run`"
        ) from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{file}: cannot read it as results.json ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise UsageError(f"{file}: not a results.json of uffd-harness (no list of tests)")
    return data


def cmd_compare(args: argparse.Namespace) -> int:
    if (args.base / "index.json").is_file() and (args.new / "index.json").is_file():
        from harness.cli.nightly import load_index

        nightly = compare_nightly(load_index(args.base), load_index(args.new), args.base, args.new)
        print(nightly_text(nightly), end="")
        return EXIT_REGRESSION if nightly.regression else 0
    result = compare(_load(args.base), _load(args.new))
    if args.json:
        print(json.dumps(comparison_json(result), indent=2))
    else:
        print(comparison_text(result), end="")
    return EXIT_REGRESSION if result.regressions else 0


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "compare",
        help="what changed between two runs: regressions first; exit 1 on any",
        description="Compare two results directories (or results.json files) case by case: "
        "new failures, known bugs that changed state, new skips (coverage lost), cases no "
        "longer run and new kernel crash titles are regressions (exit 1); fixes, new cases "
        "and crash titles gone are reported. The first line is the verdict.",
    )
    c.add_argument("base", type=Path, metavar="BASE", help="the earlier run's results directory")
    c.add_argument("new", type=Path, metavar="NEW", help="the run to judge")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.set_defaults(func=cmd_compare)
