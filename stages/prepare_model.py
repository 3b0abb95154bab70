"""Stage prepare_model: resolve the base model (dequantize the embedded GGUF, build the tiny model, or
copy a hub/local model) into `model.cache_dir` (models/base), which every later stage loads."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.models import load_model_and_tokenizer, resolve_model_path, save_atomically
from stages.common import run_stage


def prepare(cfg: PipelineConfig) -> None:
    out = Path(cfg.model.cache_dir)
    if out.exists():  # a model from another config must not be reused
        shutil.rmtree(out)
    path = resolve_model_path(cfg.model)  # embedded/builtin models are written to cache_dir here
    if Path(path).resolve() != out.resolve():
        model, tokenizer = load_model_and_tokenizer(cfg.model)
        save_atomically(out, model, tokenizer)
    print(f"base model ready in {out}")


if __name__ == "__main__":
    sys.exit(run_stage(prepare))
