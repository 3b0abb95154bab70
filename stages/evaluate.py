"""Stage evaluate@<model>-<benchmark>: greedy evaluation of one model (base or a method) on one benchmark.

Reads data/eval/<benchmark>.jsonl and models/<model>; writes results/eval/<model>/<benchmark>/
samples.jsonl (per item: prompt, completion, extracted answer, verdict, self-certainty) and
metrics.json (accuracy with its 95% CI, sample count, wall time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import ConfigError, ModelConfig, PipelineConfig, to_dict
from pipeline.data.records import read_prompts
from pipeline.eval.runner import evaluate_prompts, save_evaluation
from pipeline.models import load_model_and_tokenizer
from pipeline.tracking import make_tracker
from stages.common import model_dir, parent_run, run_stage


def evaluate(cfg: PipelineConfig, model: str, benchmark: str) -> None:
    if benchmark not in cfg.benchmarks:
        raise ConfigError(
            f"benchmarks.{benchmark}: not in this experiment; configured: {sorted(cfg.benchmarks)}"
        )
    bench = cfg.benchmarks[benchmark]
    prompts = read_prompts(Path(f"data/eval/{benchmark}.jsonl"))
    mcfg = ModelConfig(**{**to_dict(cfg.model), "name_or_path": str(model_dir(cfg, model))})
    policy, tokenizer = load_model_and_tokenizer(mcfg, cfg.trainer.device)
    records, metrics = evaluate_prompts(policy, tokenizer, prompts, bench)
    metrics["model"] = model
    tracker = make_tracker(cfg.tracking)
    tags = {
        "stage": "evaluate",
        "model": model,
        "method": model,
        "benchmark": benchmark,
        "experiment": cfg.experiment.name,
    }
    with tracker.run(f"eval-{model}-{benchmark}", tags=tags, parent_run_id=parent_run(cfg)) as run_id:
        metrics["mlflow_run_id"] = run_id
        tracker.log_params(to_dict(bench))
        tracker.log_dict(to_dict(bench), "config.yaml")
        tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=0)
        tracker.log_table(records[:20], "completions.json")
    save_evaluation(Path("results/eval") / model / benchmark, records, metrics)
    print(f"{model} on {benchmark}: accuracy {metrics['accuracy']:.3f} (n={metrics['n']})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="'base' or a method name")
    ap.add_argument("--benchmark", required=True, help="a key of `benchmarks` in params.yaml")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    return run_stage(lambda cfg: evaluate(cfg, args.model, args.benchmark), args.params)


if __name__ == "__main__":
    sys.exit(main())
