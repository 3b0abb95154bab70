"""Negative mean token entropy, the label-free reward of EM-RL / RENT."""

from __future__ import annotations

import torch

from pipeline.config import RewardSpec
from pipeline.rewards.self_certainty import scores_for
from pipeline.rl.scoring import masked_sequence_mean
from pipeline.types import ScoredBatch


def entropy_reward(batch: ScoredBatch, spec: RewardSpec) -> torch.Tensor:
    """[B, G] minus the masked mean token entropy of each completion (lower entropy, higher reward)."""
    ent = scores_for(batch, spec.source).entropy  # [N, C]
    return -masked_sequence_mean(ent, batch.completion_mask).view(batch.num_prompts, batch.group_size)
