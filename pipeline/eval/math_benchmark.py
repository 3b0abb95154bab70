"""Grading shared by the answer-matching math benchmarks (arith, GSM8K, MATH500).

The grader is the RL `gold` reward's grader (DESIGN: "the RL reward grader is the eval grader"): the last
`\\boxed{}`, with each item's recorded fallback (GSM8K and arith: the last number), compared by math-verify.
"""

from __future__ import annotations

from pipeline.config import BenchmarkConfig
from pipeline.eval.math_grader import grade as grade_answer
from pipeline.eval.verdict import Verdict
from pipeline.types import Prompt


def grade_math(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    """One math-verify verdict per completion against its prompt's gold answer."""
    del bench  # nothing configurable: the grader must stay identical to the training reward's
    return [grade_answer(c, p.gold, p.answer_fallback) for p, c in zip(prompts, completions, strict=True)]
