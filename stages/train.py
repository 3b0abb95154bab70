"""Stage train@<method>: train one method of the experiment from models/base on data/train.jsonl.

    python -m stages.train --method intuitor [key.path=value ...]

Writes models/<method>, results/train/<method>/metrics.json and steps.csv (per-step curves).
Checkpoints live in runs/<method>/ (outside DVC): a killed run resumes from the last one.
"""

from __future__ import annotations

import argparse
import json

from pipeline.parallel.launch import launch_train_stage, needs_launch
from pipeline.steps import method_train_config, train_method
from stages.common import finish, run_stage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, help="a key of `methods` in params.yaml")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("overrides", nargs="*", help="dotted TrainConfig overrides, e.g. algorithm.steps=2")
    args = ap.parse_args()

    def body(cfg):
        trainer = method_train_config(cfg, args.method, args.overrides).trainer
        if needs_launch(trainer):
            # This process starts trainer.processes copies of this stage and waits for them.
            launch_train_stage(trainer, args.method, args.params, args.overrides)
            return
        summary = train_method(cfg, args.method, args.overrides)
        if summary is not None:
            print(json.dumps(summary, indent=1))

    return run_stage(body, args.params)


if __name__ == "__main__":
    finish(main())
