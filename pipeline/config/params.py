"""Read params.yaml (the Hydra composition of conf/) into a validated PipelineConfig."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.config import ConfigError, PipelineConfig, build
from pipeline.parallel.strategy import check_accelerate_config, check_shardable
from pipeline.tasks import BENCHMARKS

PARAMS_FILE = Path("params.yaml")


def load_params(path: str | Path = PARAMS_FILE) -> PipelineConfig:
    """Validate every key before any model loads; errors name the file and the key path."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no params file (compose it: python -m cli.compose)")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from e
    try:
        return build(PipelineConfig, tree)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def check_benchmarks(cfg: PipelineConfig) -> None:
    """Every benchmark is a known one with what it needs (no torch: the data and report stages run
    only this part of `check_runnable`)."""
    for key, bench in cfg.benchmarks.items():
        if bench.name not in BENCHMARKS:
            raise ConfigError(
                f"benchmarks.{key}.name: unknown benchmark {bench.name!r}; allowed: {list(BENCHMARKS)}"
            )
        if bench.name == "alpaca_eval" and bench.judge is None:
            raise ConfigError(
                f"benchmarks.{key}.judge: alpaca_eval needs a judge section (base_url may be null)"
            )


def check_runnable(cfg: PipelineConfig) -> None:
    """Reject settings that validate but cannot run here yet, at stage start (before a model loads):
    the benchmarks, the methods' rewards, the process layout and the rollout engine."""
    check_benchmarks(cfg)
    # Imported here: the reward table needs torch, which reading params.yaml does not.
    from pipeline.rewards.registry import REWARDS

    for method, m in cfg.methods.items():
        for i, spec in enumerate(m.rewards):
            if spec.name not in REWARDS:
                raise ConfigError(
                    f"methods.{method}.rewards[{i}].name: unknown reward {spec.name!r}; "
                    f"allowed values: {sorted(REWARDS)}"
                )
    t = cfg.trainer
    check_shardable(cfg.algorithm.prompts_per_step, t.processes)
    check_accelerate_config(t)
    if cfg.rollout.engine == "vllm":
        # Imported here: the check needs torch, which reading params.yaml does not.
        from pipeline.rollout.vllm import vllm_unavailable_reason

        reason = vllm_unavailable_reason(t.device)  # the device the run trains on, not this host's default
        if reason is not None:
            raise ConfigError(reason)
