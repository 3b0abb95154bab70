"""MATH (Hendrycks): the paper's training set (MATH-lighteval train, 7,500 problems)."""

from __future__ import annotations

import logging

from pipeline.data.jsonl import DataError, require
from pipeline.data.prompts import chat_messages
from pipeline.data.sources import load_split
from pipeline.eval.math_grader import gold_from_solution
from pipeline.types import Prompt

HUB_ID = "DigitalLearningGmbH/MATH-lighteval"
logger = logging.getLogger(__name__)


def load_math(
    path: str | None,
    split: str,
    system_prompt: str | None,
    limit: int | None = None,
    skip_invalid: bool = True,
) -> list[Prompt]:
    """MATH problems as prompts; the gold answer is the last \\boxed{} of the reference solution.

    A solution without a usable box (MATH train has one: `\\boxed{}` at line 5530) is skipped with a
    warning naming file:line when `skip_invalid`, else it raises.
    """
    records, source = load_split("math", path, split, HUB_ID)
    prompts = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        problem = require(rec, "problem", source)
        gold = gold_from_solution(require(rec, "solution", source))
        if gold is None:
            msg = f"{source}:{rec.get('_line', i + 1)}: solution has no non-empty \\boxed{{}} gold answer"
            if not skip_invalid:
                raise DataError(msg)
            logger.warning("skipped %s", msg)
            continue
        meta = {k: rec[k] for k in ("level", "type", "subject") if k in rec}
        pid = str(rec.get("unique_id", f"math/{split}/{i}"))
        prompts.append(Prompt(id=pid, messages=chat_messages(problem, system_prompt), gold=gold, meta=meta))
    return prompts
