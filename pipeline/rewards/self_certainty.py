"""INTUITOR's reward: self-certainty, the mean over response tokens of KL(U || p(.|q, o_<t))."""

from __future__ import annotations

import torch

from pipeline.config import RewardSpec
from pipeline.rl.scoring import masked_sequence_mean
from pipeline.types import ScoredBatch, TokenScores


def scores_for(batch: ScoredBatch, source: str) -> TokenScores:
    """The scoring pass a reward reads: the current policy (online) or the frozen reference (offline)."""
    scores = batch.policy if source == "policy" else batch.reference
    if scores is None:
        raise ValueError(f"reward needs the {source} scoring pass, but it was not run for this batch")
    return scores


def self_certainty_reward(batch: ScoredBatch, spec: RewardSpec) -> torch.Tensor:
    """[B, G] masked mean self-certainty of each completion.

    source "policy" reuses the policy pass (no extra forward; the paper's online INTUITOR);
    source "reference" reuses the reference pass run for the KL term (offline ablation).
    """
    sc = scores_for(batch, spec.source).self_certainty  # [N, C]
    per_seq = masked_sequence_mean(sc, batch.completion_mask)  # [N]
    return per_seq.view(batch.num_prompts, batch.group_size)
