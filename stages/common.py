"""What every stage shares: validated params, the MLflow parent run, atomic outputs, error reporting."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, PipelineConfig
from pipeline.data.jsonl import DataError
from pipeline.params import load_params
from pipeline.tracking import invocation_name, parent_run_id

BASE_MODEL = "base"


def model_dir(cfg: PipelineConfig, model: str) -> Path:
    """Folder of an evaluated model: the prepared base model or a trained method's final policy."""
    if model not in cfg.evaluate_models:
        known = sorted(cfg.evaluate_models)
        raise ConfigError(f"evaluate_models.{model}: no such model; configured: {known}")
    return Path(cfg.evaluate_models[model])


def parent_run(cfg: PipelineConfig) -> str | None:
    return parent_run_id(cfg.tracking, invocation_name(), {"experiment": cfg.experiment.name})


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_stage(body: Callable[[PipelineConfig], None], params: str = "params.yaml") -> int:
    """Load and validate params (before any model loads), run the stage body, map errors to exit 2."""
    try:
        cfg = load_params(params)
        body(cfg)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
