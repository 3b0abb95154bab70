"""Train one method: `python -m stages.train [--config FILE] [key.path=value ...]`.

Reads a YAML config (default: params.yaml if it exists, else the built-in defaults), applies dotted
overrides (values parsed as YAML), validates everything before any model loads, then trains.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import ConfigError, TrainConfig, build
from pipeline.training import run_training


def apply_override(tree: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    node = tree
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--config", type=Path, default=None, help="YAML: a `train:` section or the keys")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algorithm.steps=5")
    args = parser.parse_args(argv)
    path = args.config or (Path("params.yaml") if Path("params.yaml").is_file() else None)
    tree: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        tree = loaded.get("train", loaded)
    try:
        for item in args.overrides:
            apply_override(tree, item)
        cfg = build(TrainConfig, tree)
    except ConfigError as e:
        print(f"config error ({path or 'defaults'}): {e}", file=sys.stderr)
        return 2
    result = run_training(cfg)
    last = result.history[-1] if result.history else {}
    summary = {"final_model": str(result.final_model), "steps": len(result.history), "last": last}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
