"""Compare one experiment's runs under several trainer seeds: per-seed scores and pooled paired tests.

python -m cli.seeds RESULTS [RESULTS ...] [--labels seed0 seed1] [--methods intuitor grpo] [--out FILE]

Each RESULTS is a copy of one seed's results/ folder (its eval/ and train/), e.g. made with
`cp -r results ../seed0` after that seed's `dvc exp run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.atomic import write_text_atomic
from pipeline.seeds import seeds_report


def _found(roots: list[Path], level: str) -> list[str]:
    """Model (level 'model') or benchmark names present in every seed's results/eval."""
    index = 0 if level == "model" else 1
    sets = [
        {p.relative_to(r / "eval").parts[index] for p in (r / "eval").glob("*/*/metrics.json")} for r in roots
    ]
    return sorted(set.intersection(*sets)) if sets else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.seeds", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="one results/ folder per seed")
    parser.add_argument("--labels", nargs="+", help="a name per folder (default: the folder names)")
    parser.add_argument("--methods", nargs="+", help="trained methods, in table order (default: all found)")
    parser.add_argument("--benchmarks", nargs="+", help="benchmarks (default: all found in every folder)")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of printing it")
    args = parser.parse_args(argv)
    missing = [str(r / "eval") for r in args.results if not (r / "eval").is_dir()]
    if missing:
        parser.error(f"no eval/ results in {', '.join(missing)}: pass each seed's results/ folder")
    labels = args.labels or [r.resolve().name for r in args.results]
    if len(labels) != len(args.results):
        parser.error(f"{len(args.results)} results folders but {len(labels)} labels")
    methods = args.methods or [m for m in _found(args.results, "model") if m != "base"]
    benchmarks = args.benchmarks or _found(args.results, "benchmark")
    text = seeds_report(args.results, labels, methods, benchmarks)
    if args.out:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
