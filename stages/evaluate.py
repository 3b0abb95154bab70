"""Stage evaluate@<model>-<benchmark>: greedy evaluation of one model (base or a method) on one benchmark.

Writes results/eval/<model>/<benchmark>/samples.jsonl (prompt, completion, extracted answer, verdict,
self-certainty per item) and metrics.json (accuracy, 95% CI, sample count, wall time, MLflow run id).

Resumable: finished chunks are appended to runs/eval/<model>/<benchmark>/samples.partial.jsonl (not a
DVC output); rerun after a kill, the stage reuses them instead of generating them again (metrics.json's
resumed_items) and deletes the file once the outputs are written.
"""

from __future__ import annotations

import argparse

from pipeline.steps import evaluate_model
from stages.common import finish, run_stage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a key of `evaluate_models` ('base' or a method)")
    ap.add_argument("--benchmark", required=True, help="a key of `benchmarks` in params.yaml")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    def body(cfg):
        m = evaluate_model(cfg, args.model, args.benchmark)
        value = "not judged" if m["score"] is None else f"{m['score']:.3f}"
        print(f"{args.model} on {args.benchmark}: {m['metric']} {value} (n={m['n']})")

    return run_stage(body, args.params)


if __name__ == "__main__":
    finish(main())
