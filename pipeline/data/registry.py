"""Dataset name -> training prompts (`data` section); benchmarks live in `pipeline.eval.benchmarks`."""

from __future__ import annotations

from pipeline.config import DataConfig
from pipeline.data.arith import arith_prompts
from pipeline.data.code_contests import load_code_contests
from pipeline.data.gsm8k import load_gsm8k
from pipeline.data.math import load_math
from pipeline.types import Prompt

FILE_LOADERS = {
    "math": load_math,
    "gsm8k": load_gsm8k,
    "code_contests": load_code_contests,
}


def load_prompts(cfg: DataConfig, system_prompt: str | None) -> list[Prompt]:
    """Training prompts of the `data` section."""
    if cfg.name == "arith":
        prompts = arith_prompts(cfg.split, cfg.train_size, cfg.test_size, cfg.levels, cfg.seed, system_prompt)
        return prompts[: cfg.limit] if cfg.limit is not None else prompts
    if cfg.name not in FILE_LOADERS:
        raise KeyError(
            f"data.name: unknown dataset {cfg.name!r}; available: {[*sorted(FILE_LOADERS), 'arith']}"
        )
    return FILE_LOADERS[cfg.name](cfg.path, cfg.split, system_prompt, cfg.limit)
