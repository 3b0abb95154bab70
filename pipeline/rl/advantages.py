"""Group-relative advantages (GRPO): each completion's reward against its own group's."""

from __future__ import annotations

import torch

from pipeline.config import AlgorithmConfig, RewardSpec
from pipeline.rewards.registry import combine
from pipeline.types import ScoredBatch


def group_advantages(rewards: torch.Tensor, std_eps: float = 1e-4, scale_by_std: bool = True) -> torch.Tensor:
    """[B, G] rewards -> [B, G] advantages (float32).

    A = (r - mean_g r) / (std_g r + std_eps) with the unbiased std (as the paper's TRL-based code);
    without `scale_by_std` (Dr. GRPO) A = r - mean_g r. A group whose rewards are all equal gets
    exactly 0: it carries no learning signal, and float round-off must not invent one.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, G], got shape {tuple(rewards.shape)}")
    r = rewards.double()
    centred = r - r.mean(dim=1, keepdim=True)
    if scale_by_std:
        g = r.shape[1]
        std = r.std(dim=1, keepdim=True) if g > 1 else torch.zeros_like(r[:, :1])
        centred = centred / (std + std_eps)
    constant = (r.amax(dim=1) == r.amin(dim=1))[:, None]
    return torch.where(constant, torch.zeros_like(centred), centred).float()


class StepRewards:
    """A step's rewards, `total` [B, G] and per-reward `parts`, and their group advantages [N].

    `live`: the policy's certainty reaches batch.policy micro-batch by micro-batch from the gradient
    pass (one iteration without recorded scores), so the rewards are recombined at every read. A group's
    rewards read its own rows only: once a micro-batch of whole groups has run, its rows' advantages are
    final, and the last read sees every row's.
    """

    def __init__(self, specs: list[RewardSpec], batch: ScoredBatch, alg: AlgorithmConfig, live: bool) -> None:
        self.specs, self.batch, self.alg, self.live = specs, batch, alg, live
        self.total, self.parts = combine(specs, batch) if not live else (torch.zeros(0), {})

    def advantages(self) -> torch.Tensor:  # [N]
        if self.live:
            self.total, self.parts = combine(self.specs, self.batch)
        return group_advantages(self.total, self.alg.std_eps, self.alg.scale_rewards).flatten()
