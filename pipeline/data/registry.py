"""Dataset name -> prompts, for training (`data` section) and evaluation (`benchmarks` section)."""

from __future__ import annotations

import random

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.arith import arith_prompts
from pipeline.data.code_contests import load_code_contests
from pipeline.data.gsm8k import load_gsm8k
from pipeline.data.math import load_math
from pipeline.data.math500 import load_math500
from pipeline.types import Prompt

FILE_LOADERS = {
    "math": load_math,
    "gsm8k": load_gsm8k,
    "math500": load_math500,
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


BENCHMARKS = ("arith", "gsm8k", "math500")


def load_benchmark(bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None) -> list[Prompt]:
    """A benchmark's items; with `limit`, a seeded random subset (kept in dataset order)."""
    if bench.name == "arith":
        # The held-out split of the embedded generator configured in `data` (same seed, sizes, levels).
        prompts = arith_prompts(
            bench.split, data.train_size, data.test_size, data.levels, data.seed, system_prompt
        )
    elif bench.name in ("gsm8k", "math500"):
        prompts = FILE_LOADERS[bench.name](bench.path, bench.split, system_prompt)
    else:
        raise KeyError(f"benchmarks.{bench.name}: unknown benchmark; available: {list(BENCHMARKS)}")
    if bench.limit is not None and bench.limit < len(prompts):
        keep = sorted(random.Random(bench.seed).sample(range(len(prompts)), bench.limit))
        prompts = [prompts[i] for i in keep]
    return prompts
