"""One training run end to end: load model, data and tracker from a TrainConfig, train, close the run."""

from __future__ import annotations

import torch

from pipeline.config import ConfigError, TrainConfig, to_dict
from pipeline.data.jsonl import DataError
from pipeline.data.registry import load_prompts
from pipeline.models import load_model_and_tokenizer
from pipeline.precision import with_resolved_precision
from pipeline.rewards.registry import REWARDS
from pipeline.rl.distributed import Distributed
from pipeline.rl.trainer import Trainer, TrainResult
from pipeline.tracking import NullTracker, make_tracker
from pipeline.types import Prompt


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
    if cfg.trainer.threads > 0:
        torch.set_num_threads(cfg.trainer.threads)
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
