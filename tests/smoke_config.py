"""The real config, as tests use it: conf/ composed with experiment=smoke (the tiny random model) and
every method, exactly as `dvc exp run -S experiment=smoke` composes it. Tests start from this and state
only what they change, so they run configurations a user can run (never a hand-built dataclass whose
values conf/ does not hold)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.config import (
    BenchmarkConfig,
    DataConfig,
    ModelConfig,
    PipelineConfig,
    TrackingConfig,
    TrainConfig,
    TrainerConfig,
    apply_override,
    build,
    to_dict,
)
from pipeline.config.compose import compose_config

METHODS = ("intuitor", "grpo", "grpo_pv", "intuitor_offline", "entropy")


@functools.cache
def smoke() -> PipelineConfig:
    """experiment=smoke with every method of conf/method/ (composed once per test process)."""
    return compose_config(["experiment=smoke", f"method=[{','.join(METHODS)}]", "eval=[arith,gsm8k]"])


def _with(section: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    tree = to_dict(section)
    for key, value in overrides.items():
        apply_override(tree, key, value)
    return tree


def train_config(
    method: str = "intuitor", root: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """smoke's TrainConfig of `method` with dotted `overrides` ({"algorithm.lr": 1e-3}); with `root`,
    checkpoints go to root/<method> and MLflow to root/mlflow.db (unknown keys fail in `build`)."""
    tree = to_dict(smoke().train_config(method))
    if root is not None:
        tree["trainer"]["output_dir"] = str(root / method)
        tree["tracking"] = to_dict(tracking_config(root))
    for key, value in (overrides or {}).items():
        apply_override(tree, key, value)
    return build(TrainConfig, tree)


def tracking_config(root: Path, **overrides: Any) -> TrackingConfig:
    """smoke's tracking section on a sqlite store and spool folder under `root`."""
    base = {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "spool_dir": str(root / "spool"), **overrides}
    return build(TrackingConfig, _with(smoke().tracking, base))


def trainer_config(**overrides: Any) -> TrainerConfig:
    return build(TrainerConfig, _with(smoke().trainer, overrides))


def model_config(**overrides: Any) -> ModelConfig:
    return build(ModelConfig, _with(smoke().model, overrides))


def data_config(**overrides: Any) -> DataConfig:
    """smoke's data section (arith) with `overrides` (e.g. name="gsm8k", path=..., limit=...)."""
    return build(DataConfig, _with(smoke().data, overrides))


def benchmark_config(name: str = "arith", **overrides: Any) -> BenchmarkConfig:
    """conf/eval/<name>.yaml as composed (arith and gsm8k are in smoke(); others composed on demand)."""
    benchmarks = smoke().benchmarks
    if name not in benchmarks:
        benchmarks = _other_benchmarks(name)
    return build(BenchmarkConfig, _with(benchmarks[name], overrides))


@functools.cache
def _other_benchmarks(name: str) -> dict[str, BenchmarkConfig]:
    # the default experiment (smoke sets benchmarks.arith keys, which need eval=arith)
    return compose_config([f"eval=[{name}]"]).benchmarks
