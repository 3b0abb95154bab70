"""Dataset name -> loader of training prompts."""

from __future__ import annotations

from pipeline.config import DataConfig
from pipeline.data.gsm8k import load_gsm8k
from pipeline.data.math import load_math
from pipeline.types import Prompt

LOADERS = {"math": load_math, "gsm8k": load_gsm8k}


def load_prompts(cfg: DataConfig, system_prompt: str | None) -> list[Prompt]:
    if cfg.name not in LOADERS:
        raise KeyError(f"data.name: unknown dataset {cfg.name!r}; available: {sorted(LOADERS)}")
    return LOADERS[cfg.name](cfg.path, cfg.split, system_prompt, cfg.limit)
