"""The pipeline's steps, relative to the working directory; DVC stages and the Hydra sweep app call these.
A training run: train_method (the method's TrainConfig and output folders) -> run_training (data, model,
tracking run) -> Trainer.train.

Layout (all relative to the cwd): models/base, data/train.jsonl, data/eval/<benchmark>.jsonl,
runs/<method>/ (checkpoints, outside DVC), models/<method>, results/train/<method>/{metrics.json,
steps.csv}, results/eval/<model>/<benchmark>/{samples.jsonl, metrics.json}, results/report.md.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from pipeline.atomic import write_json_atomic, write_text_atomic
from pipeline.config import (
    ConfigError,
    ModelConfig,
    PipelineConfig,
    TrainConfig,
    apply_override,
    build,
    to_dict,
)
from pipeline.data.jsonl import DataError
from pipeline.data.records import read_prompts, write_prompts
from pipeline.data.screen import RecordScreen
from pipeline.eval.stats import headline_score
from pipeline.parallel.strategy import is_main_process
from pipeline.report import write_report
from pipeline.tasks import load_benchmark
from pipeline.tasks.training import load_prompts
from pipeline.tracking import NullTracker, invocation_name, log_to_parent, make_tracker, parent_run_id
from pipeline.types import Prompt

if TYPE_CHECKING:
    from pipeline.rl.trainer import TrainResult

# prepare_model, run_training and evaluate_model import torch, transformers and the trainer or the
# evaluation runner when called: prepare_data and report (and a sweep's report) never load a model, and
# those imports took 4-5 s of each of their few seconds.

# Per-step columns written for `dvc plots` and the report.
PLOT_KEYS = [
    "step",
    "reward/mean",
    "self_certainty/mean",
    "completion/length_mean",
    "gold/accuracy",
    "kl",
    "gold/answer_rate",
    "completion/clipped_ratio",
]
# (step metric, its name on the parent run before "/<method>"): MLflow groups charts by the prefix, so
# the parent's chart view shows each curve's methods side by side.
PARENT_CURVES = [
    ("reward/mean", "reward"),
    ("self_certainty/mean", "self_certainty"),
    ("completion/length_mean", "length"),
    ("gold/accuracy", "gold_accuracy"),
]


def parent_run(cfg: PipelineConfig, invocation: str | None = None) -> str | None:
    """This invocation's MLflow parent run (found by tag, created on first use)."""
    return parent_run_id(cfg.tracking, invocation or invocation_name(), {"experiment": cfg.experiment.name})


def prepare_model(cfg: PipelineConfig) -> Path:
    """Resolve the base model (dequantize / build / copy) into model.cache_dir."""
    from pipeline.modeling.models import load_model_and_tokenizer, resolve_model_path, save_atomically

    out = Path(cfg.model.cache_dir)
    if out.exists():  # a model from another config must never be reused
        shutil.rmtree(out)
    path = resolve_model_path(cfg.model)  # embedded and builtin models are written to cache_dir here
    if Path(path).resolve() != out.resolve():
        model, tokenizer = load_model_and_tokenizer(cfg.model)
        save_atomically(out, model, tokenizer)
    return out


def prepare_data(cfg: PipelineConfig) -> dict[str, int]:
    """data/train.jsonl, data/eval/<benchmark>.jsonl and data/stats.json; returns the record counts.

    data/stats.json (a DVC metric) counts per dataset the records kept, skipped for an invalid gold
    (`on_invalid: skip`) by reason, and written (a benchmark's `limit` subset), so a skip is never silent.
    """
    counts, stats = {}, {}
    screen = RecordScreen(cfg.data.on_invalid, "data")
    prompts = load_prompts(cfg.data, cfg.model.system_prompt, screen)
    write_prompts(prompts, Path("data/train.jsonl"))
    counts["train"] = len(prompts)
    stats["train"] = {**screen.stats(), "written": len(prompts)}
    for name, bench in cfg.benchmarks.items():
        screen = RecordScreen(bench.on_invalid, f"benchmarks.{name}")
        items = load_benchmark(bench, cfg.data, cfg.model.system_prompt, screen)
        write_prompts(items, Path(f"data/eval/{name}.jsonl"))
        counts[name] = len(items)
        stats[name] = {**screen.stats(), "written": len(items)}
    write_json_atomic(Path("data/stats.json"), stats)
    return counts


def method_train_config(cfg: PipelineConfig, method: str, overrides: list[str] | None = None) -> TrainConfig:
    """The TrainConfig of one method of the experiment, with dotted overrides applied."""
    tcfg = cfg.train_config(method, output_dir=f"runs/{method}")
    if overrides:
        tree = to_dict(tcfg)
        for item in overrides:
            key, _, raw = item.partition("=")
            apply_override(tree, key, yaml.safe_load(raw))
        tcfg = build(type(tcfg), tree)
    tcfg.model.name_or_path = cfg.model.cache_dir  # the prepared base model
    return tcfg


def run_training(
    cfg: TrainConfig,
    show_progress: bool = True,
    parent_run_id: str | None = None,
    prompts: list[Prompt] | None = None,
    tags: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train cfg.method on cfg.data with cfg.model; metrics go to cfg.tracking (MLflow by default).

    Under torchrun / accelerate launch every process calls this; only the main one tracks and writes.
    """
    import torch

    from pipeline.heap import retain_freed_memory
    from pipeline.modeling.models import load_model_and_tokenizer
    from pipeline.modeling.precision import with_resolved_precision
    from pipeline.parallel.distributed import Distributed
    from pipeline.rewards.registry import REWARDS
    from pipeline.rl.trainer import Trainer

    if cfg.trainer.threads > 0:
        torch.set_num_threads(cfg.trainer.threads)
    if cfg.trainer.retain_freed_memory:
        retain_freed_memory()
    for i, spec in enumerate(cfg.method.rewards):
        if spec.name not in REWARDS:
            allowed = sorted(REWARDS)
            raise ConfigError(f"method.rewards[{i}].name: unknown reward {spec.name!r}; allowed: {allowed}")
    # Data first: a bad path fails in seconds, before a model loads.
    if prompts is None:
        prompts = load_prompts(cfg.data, cfg.model.system_prompt)
    if any(spec.name == "gold" for spec in cfg.method.rewards):
        # Without a gold answer every completion would earn 0: a silent zero, not a reward.
        missing = [p.id for p in prompts if p.gold is None]
        if missing:
            raise DataError(
                f"method {cfg.method.name!r} uses the gold reward, but {len(missing)} of {len(prompts)} "
                f"training prompts of data.name={cfg.data.name!r} have no gold answer (first: {missing[:3]})"
            )
    dist = Distributed.from_config(cfg)
    device = str(dist.device) if dist.device is not None else cfg.trainer.device
    # Resolved before anything is logged: the run's params record the precision that ran (bf16 or no).
    cfg = with_resolved_precision(cfg, device)
    # Main first: an embedded or builtin model is written to model.cache_dir on first use.
    with dist.main_first():
        policy, tokenizer = load_model_and_tokenizer(cfg.model, device)
    show_progress = show_progress and dist.is_main
    tracker = make_tracker(cfg.tracking) if dist.is_main else NullTracker()
    run_tags = {
        "method": cfg.method.name,
        "stage": "train",
        "model": cfg.model.name_or_path,
        "data": cfg.data.name,
    }
    run_tags.update(tags or {})
    with tracker.run(f"train-{cfg.method.name}", tags=run_tags, parent_run_id=parent_run_id) as run_id:
        tracker.log_params(to_dict(cfg))
        tracker.log_dict(to_dict(cfg), "config.yaml")
        trainer = Trainer(
            cfg, policy, tokenizer, prompts, tracker=tracker, show_progress=show_progress, dist=dist
        )
        result = trainer.train(stop_after)
    result.run_id = run_id
    return result


def train_method(
    cfg: PipelineConfig, method: str, overrides: list[str] | None = None, invocation: str | None = None
) -> dict | None:
    """Train one method from models/base on data/train.jsonl; final policy to models/<method>.

    Under torchrun / accelerate launch every process trains; only the main one (which returns the
    summary; the others return None) talks to MLflow and writes the outputs.
    """
    tcfg = method_train_config(cfg, method, overrides)
    prompts = read_prompts(Path("data/train.jsonl"))
    t0 = time.perf_counter()
    tags = {"experiment": cfg.experiment.name}
    main = is_main_process()
    parent = parent_run(cfg, invocation) if main else None
    result = run_training(tcfg, parent_run_id=parent, prompts=prompts, tags=tags)
    if not main:
        return None
    final = Path("models") / method
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(result.final_model, final)
    out = Path("results/train") / method
    summary = {
        "method": method,
        "steps": len(result.history),
        "processes": result.processes,
        "strategy": result.strategy,
        # what the passes ran in (trainer.mixed_precision, auto resolved on this machine)
        "mixed_precision": result.mixed_precision,
        # > 0: this invocation continued a killed or stopped one from that checkpoint
        "resumed_from_step": result.resumed_from,
        "wall_s": time.perf_counter() - t0,
        "mlflow_run_id": result.run_id,
        "last_step": result.history[-1] if result.history else {},
    }
    write_json_atomic(out / "metrics.json", summary)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow([k.replace("/", "_") for k in PLOT_KEYS])
    writer.writerows([m.get(k, "") for k in PLOT_KEYS] for m in result.history)
    write_text_atomic(out / "steps.csv", table.getvalue())
    curves = [{f"{name}/{method}": m[k] for k, name in PARENT_CURVES if k in m} for m in result.history]
    log_to_parent(cfg.tracking, parent, curves)
    return summary


def evaluate_model(cfg: PipelineConfig, model: str, benchmark: str, invocation: str | None = None) -> dict:
    """Greedy evaluation of evaluate_models[model] on data/eval/<benchmark>.jsonl.

    Resumable: completed chunks go to runs/eval/<model>/<benchmark>/samples.partial.jsonl as they
    finish; a rerun after a kill takes them from there (metrics' resumed_items) instead of generating
    them again, and the file is deleted once samples.jsonl and metrics.json are written."""
    if benchmark not in cfg.benchmarks:
        raise ConfigError(
            f"benchmarks.{benchmark}: not in this experiment; configured: {sorted(cfg.benchmarks)}"
        )
    if model not in cfg.evaluate_models:
        raise ConfigError(
            f"evaluate_models.{model}: no such model; configured: {sorted(cfg.evaluate_models)}"
        )
    from pipeline.eval.partial import weights_digest
    from pipeline.eval.runner import evaluate_prompts, save_evaluation
    from pipeline.modeling.models import load_model_and_tokenizer, resolve_model_path
    from pipeline.rollout.factory import make_eval_engine

    bench = cfg.benchmarks[benchmark]
    prompts = read_prompts(Path(f"data/eval/{benchmark}.jsonl"))
    mcfg = ModelConfig(**{**to_dict(cfg.model), "name_or_path": cfg.evaluate_models[model]})
    policy, tokenizer = load_model_and_tokenizer(mcfg, cfg.trainer.device)
    out_dir = Path("results/eval") / model / benchmark
    # Completed chunks survive a kill here, outside the stage's outputs (DVC deletes those before it
    # reruns the stage); reused only by a run with the same weights, dtype, device, precision, config
    # and prompts.
    partial = Path("runs/eval") / model / benchmark / "samples.partial.jsonl"
    # Generation runs in the engine the training rollouts use and in the precision that engine
    # generates in during training (auto resolved on this machine: for the HF engine the weights' own
    # on CPU, for vLLM the training passes' precision); that is what is recorded.
    engine, precision = make_eval_engine(
        cfg.rollout, mcfg, cfg.trainer.mixed_precision, policy, tokenizer, seed=bench.seed
    )
    identity = {
        "weights": weights_digest(Path(resolve_model_path(mcfg))),
        "dtype": mcfg.dtype,
        "device": cfg.trainer.device,
        "engine": cfg.rollout.engine,
        "mixed_precision": precision,
    }
    records, metrics = evaluate_prompts(
        policy,
        tokenizer,
        prompts,
        bench,
        out_dir=out_dir,
        model_name=model,
        partial=partial,
        model_fingerprint=identity,
        precision=precision,
        engine=engine,
    )
    metrics["engine"] = cfg.rollout.engine
    metrics["model"] = model
    tracker = make_tracker(cfg.tracking)
    tags = {
        "stage": "evaluate",
        "model": model,
        "method": model,
        "benchmark": benchmark,
        "experiment": cfg.experiment.name,
    }
    parent = parent_run(cfg, invocation)
    with tracker.run(f"eval-{model}-{benchmark}", tags=tags, parent_run_id=parent) as run_id:
        metrics["mlflow_run_id"] = run_id
        tracker.log_params(to_dict(bench))
        tracker.log_dict(to_dict(bench), "config.yaml")
        numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        for cat, row in metrics.get("per_category", {}).items():
            numbers[f"{metrics['metric']}/{cat}"] = row[metrics["metric"]]
        tracker.log_metrics(numbers, step=0)
        tracker.log_table(records[:20], "completions.json")
    save_evaluation(out_dir, records, metrics)
    partial.unlink()  # only now: until the results are saved, a rerun must still find every chunk
    headline = headline_score(metrics)
    if headline is not None:  # a benchmark without a judge has no number to copy
        log_to_parent(cfg.tracking, parent, [{f"{benchmark}/{model}": headline}])
    return metrics


def make_report(cfg: PipelineConfig) -> str:
    return write_report(
        Path("results/eval"),
        Path("results/train"),
        Path("results/report.md"),
        cfg.experiment.name,
        list(cfg.methods),
        list(cfg.benchmarks),
    )
