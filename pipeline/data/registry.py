"""Dataset name -> training prompts (`data` section); benchmarks live in `pipeline.eval.benchmarks`."""

from __future__ import annotations

from pipeline.config import DataConfig
from pipeline.data.arith import arith_prompts
from pipeline.data.code_contests import load_code_contests
from pipeline.data.gsm8k import load_gsm8k
from pipeline.data.math import load_math
from pipeline.data.screen import RecordScreen, check_limit, screen_generated
from pipeline.types import Prompt

# Loaders of file datasets whose prompts carry a gold answer (screened with `data.on_invalid`).
GOLD_LOADERS = {"math": load_math, "gsm8k": load_gsm8k}
FILE_LOADERS = {**GOLD_LOADERS, "code_contests": load_code_contests}


def load_prompts(
    cfg: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    """Training prompts of the `data` section; invalid golds go to `screen` (default: `data.on_invalid`)."""
    check_limit(cfg.limit, "data.limit")
    screen = screen or RecordScreen(cfg.on_invalid, "data")
    if cfg.name == "arith":
        prompts = arith_prompts(cfg.split, cfg.train_size, cfg.test_size, cfg.levels, cfg.seed, system_prompt)
        prompts = prompts[: cfg.limit] if cfg.limit is not None else prompts
        return screen_generated(prompts, screen, f"arith:{cfg.split}")
    if cfg.name in GOLD_LOADERS:
        return GOLD_LOADERS[cfg.name](cfg.path, cfg.split, system_prompt, cfg.limit, screen=screen)
    if cfg.name not in FILE_LOADERS:
        raise KeyError(
            f"data.name: unknown dataset {cfg.name!r}; available: {[*sorted(FILE_LOADERS), 'arith']}"
        )
    prompts = FILE_LOADERS[cfg.name](cfg.path, cfg.split, system_prompt, cfg.limit)
    return screen.finish(cfg.path or cfg.name, prompts)
