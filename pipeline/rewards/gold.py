"""The `gold` reward (GRPO with verifiable rewards) and the gold metrics every method logs.

A completion earns 1.0 only if its last `\\boxed{...}` is equivalent to the gold answer; datasets whose
prompts say `answer_fallback="last_number"` (plain-number answers) also accept the last number.
`gold_correctness` and `answer_rate` are logged as metrics for every method (never as INTUITOR's reward).
"""

from __future__ import annotations

import torch

from pipeline.config import RewardSpec
from pipeline.eval.math_grader import extract_answer, grade
from pipeline.types import ScoredBatch


def gold_correctness(batch: ScoredBatch) -> torch.Tensor:
    """[B, G] float32: 1.0 where the completion's boxed answer matches its prompt's gold, else 0.0."""
    rows = [
        [
            1.0 if grade(text, group.prompt.gold, group.prompt.answer_fallback).correct else 0.0
            for text in group.texts
        ]
        for group in batch.groups
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(batch.num_prompts, batch.group_size)


def answer_rate(batch: ScoredBatch) -> torch.Tensor:
    """[B, G] float32: 1.0 where an answer could be extracted (right or wrong), else 0.0."""
    rows = [
        [
            1.0 if extract_answer(text, group.prompt.answer_fallback).answer is not None else 0.0
            for text in group.texts
        ]
        for group in batch.groups
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(batch.num_prompts, batch.group_size)


def gold_reward(batch: ScoredBatch, spec: RewardSpec) -> torch.Tensor:
    """[B, G] float32 reward: 1.0 for a boxed answer equivalent to the gold answer, else 0.0.

    Prompts without a gold answer (gold None) give 0.0 to every completion.
    """
    del spec  # the gold reward has no options beyond its weight, which `combine` applies
    return gold_correctness(batch)
