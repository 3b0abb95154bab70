"""MATH (Hendrycks): the paper's training set (MATH-lighteval train, 7,500 problems)."""

from __future__ import annotations

from pipeline.config import DataConfig
from pipeline.data.jsonl import require, where
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.eval.math_grader import gold_from_solution
from pipeline.types import Prompt

HUB_ID = "DigitalLearningGmbH/MATH-lighteval"


def load_math(
    path: str | None,
    split: str,
    system_prompt: str | None,
    limit: int | None = None,
    skip_invalid: bool = True,
    screen: RecordScreen | None = None,
) -> list[Prompt]:
    """MATH problems as prompts; the gold answer is the last \\boxed{} of the reference solution.

    A solution without a usable box (MATH train has two: empty `\\boxed{}` at lines 5530 and 5532) or
    whose box math-verify cannot parse goes to `screen` (default: skipped when `skip_invalid`, else it
    raises; the pipeline passes the screen of `data.on_invalid`).
    """
    screen = screen or RecordScreen("skip" if skip_invalid else "error")
    records, source = load_split("math", path, split, HUB_ID)
    prompts = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        problem = require(rec, "problem", source, str)
        solution = require(rec, "solution", source, str)
        pid = str(rec.get("unique_id", f"math/{split}/{i}"))
        tail = solution[-60:].replace("\n", " ")
        absent = f"solution has no non-empty \\boxed{{}} gold answer (it ends {tail!r})"
        gold = gold_from_solution(solution)
        if not screen.gold(where(rec, source), pid, gold, absent):
            continue
        meta = {k: rec[k] for k in ("level", "type", "subject") if k in rec}
        prompts.append(Prompt(id=pid, messages=chat_messages(problem, system_prompt), gold=gold, meta=meta))
    return screen.finish(source, prompts)


def training_prompts(cfg: DataConfig, system_prompt: str | None, screen: RecordScreen) -> list[Prompt]:
    """The `data` section's MATH split (the paper's training set)."""
    return load_math(cfg.path, cfg.split, system_prompt, cfg.limit, screen=screen)
