"""Training prompts of the `data` section: `data.name` -> the task module's `training_prompts`."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.config import DataConfig
from pipeline.data.screen import RecordScreen, check_limit
from pipeline.registry import Registry
from pipeline.types import Prompt

TrainingLoader = Callable[[DataConfig, str | None, RecordScreen], list[Prompt]]

# `data.name` -> (data section, system prompt, screen) -> the split's prompts; a gold answer the grader
# can never match goes to the screen (`data.on_invalid`: stop naming file:line, or skip and count).
TRAINING_DATA: Registry[TrainingLoader] = Registry(
    "dataset",
    {name: f"pipeline.tasks.{name}:training_prompts" for name in ("arith", "math", "gsm8k", "code_contests")},
)


def load_prompts(
    cfg: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    """Training prompts of the `data` section; invalid golds go to `screen` (default: `data.on_invalid`)."""
    check_limit(cfg.limit, "data.limit")
    if cfg.name not in TRAINING_DATA:
        raise KeyError(f"data.name: unknown dataset {cfg.name!r}; available: {sorted(TRAINING_DATA)}")
    return TRAINING_DATA[cfg.name](cfg, system_prompt, screen or RecordScreen(cfg.on_invalid, "data"))
