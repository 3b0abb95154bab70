"""Replay tracking calls spooled while the MLflow store was unreachable or locked.

python -m cli.replay [--uri URI] [SPOOL ...]    # default: params.yaml's tracking.spool_dir/*.jsonl
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from pipeline.tracking.outage import check_uri
from pipeline.tracking.replay import anchor_dir, replay_spool

PARAMS_FILE = Path("params.yaml")


def params_spool_dir(params: Path) -> str | None:
    """tracking.spool_dir of a params.yaml (None without one): where the pipeline's stages spool."""
    try:
        return str(yaml.safe_load(params.read_text(encoding="utf-8"))["tracking"]["spool_dir"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cli.replay",
        description="Replay tracking calls spooled during a store outage; delete the replayed spools.",
    )
    parser.add_argument("--uri", help="tracking URI to replay into (default: each spool's own store)")
    parser.add_argument(
        "spools", nargs="*", type=Path, help="spool files (default: params.yaml's tracking.spool_dir/*.jsonl)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.uri:
        check_uri(args.uri)
    paths = args.spools
    if not paths:
        default_dir = params_spool_dir(PARAMS_FILE)
        if default_dir is None:
            print(f"{PARAMS_FILE}: no tracking.spool_dir here; name the spool files to replay")
            return 2
        paths = sorted(anchor_dir(default_dir).glob("*.jsonl"))
        if not paths:
            print(f"no tracking spools in {anchor_dir(default_dir)}")
    results = [replay_spool(path, uri=args.uri) for path in paths]
    for result in results:
        print(result.describe())
    return 0 if all(r.status in ("done", "gone") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
