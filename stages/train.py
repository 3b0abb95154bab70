"""Stage train@<method>: train one method of the experiment on data/train.jsonl from models/base.

    python -m stages.train --method intuitor [key.path=value ...]

Writes models/<method> (final policy), results/train/<method>/metrics.json (last step + wall time)
and results/train/<method>/steps.csv (per-step curves for `dvc plots` and the report). Checkpoints
live in runs/<method>/ (outside DVC) so a killed run resumes.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from pipeline.config import PipelineConfig, apply_override, build, to_dict
from pipeline.data.records import read_prompts
from pipeline.training import run_training
from stages.common import parent_run, run_stage, write_json

PLOT_KEYS = ["step", "reward/mean", "self_certainty/mean", "completion/length_mean", "gold/accuracy", "kl"]


def train(cfg: PipelineConfig, method: str, overrides: list[str]) -> None:
    tcfg = cfg.train_config(method, output_dir=f"runs/{method}")
    if overrides:
        tree = to_dict(tcfg)
        for item in overrides:
            key, _, raw = item.partition("=")
            apply_override(tree, key, yaml.safe_load(raw))
        tcfg = build(type(tcfg), tree)
    tcfg.model.name_or_path = cfg.model.cache_dir  # the prepared base model (models/base)
    prompts = read_prompts(Path("data/train.jsonl"))
    t0 = time.perf_counter()
    tags = {"experiment": cfg.experiment.name}
    result = run_training(tcfg, parent_run_id=parent_run(cfg), prompts=prompts, tags=tags)
    final = Path("models") / method
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(result.final_model, final)
    out = Path("results/train") / method
    last = result.history[-1] if result.history else {}
    write_json(
        out / "metrics.json",
        {
            "method": method,
            "steps": len(result.history),
            "wall_s": time.perf_counter() - t0,
            "last_step": last,
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "steps.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([k.replace("/", "_") for k in PLOT_KEYS])
        for m in result.history:
            writer.writerow([m.get(k, "") for k in PLOT_KEYS])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, help="a key of `methods` in params.yaml")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("overrides", nargs="*", help="dotted TrainConfig overrides, e.g. algorithm.steps=2")
    args = ap.parse_args()
    return run_stage(lambda cfg: train(cfg, args.method, args.overrides), args.params)


if __name__ == "__main__":
    sys.exit(main())
