"""The reward table and the weighted combination a method's config names."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.config import RewardSpec
from pipeline.registry import Registry
from pipeline.types import ScoredBatch

RewardFn = Callable[[ScoredBatch, RewardSpec], torch.Tensor]

# A method's `rewards[].name` -> its reward function [B, G].
REWARDS: Registry[RewardFn] = Registry(
    "reward",
    {
        "self_certainty": "pipeline.rewards.self_certainty:self_certainty_reward",
        "gold": "pipeline.rewards.gold:gold_reward",
        "plurality_vote": "pipeline.rewards.plurality_vote:plurality_vote_reward",
        "entropy": "pipeline.rewards.entropy:entropy_reward",
    },
)


def get_reward(name: str) -> RewardFn:
    return REWARDS[name]


def combine(specs: list[RewardSpec], batch: ScoredBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total reward [B, G] = sum_i weight_i * reward_i, and each component [B, G] by name."""
    if not specs:
        raise ValueError("a method needs at least one reward")
    parts: dict[str, torch.Tensor] = {}
    total = torch.zeros(batch.num_prompts, batch.group_size, dtype=torch.float64)
    for spec in specs:
        key = (
            spec.name
            if spec.source == "policy" or spec.name not in ("self_certainty", "entropy")
            else f"{spec.name}_{spec.source}"
        )
        r = get_reward(spec.name)(batch, spec).to(torch.float64)
        if r.shape != total.shape:
            raise ValueError(
                f"reward {spec.name!r} returned shape {tuple(r.shape)}, expected {tuple(total.shape)}"
            )
        parts[key] = r
        total = total + spec.weight * r
    return total, parts


def needs_reference(specs: list[RewardSpec]) -> bool:
    """True when a reward reads the frozen reference model's scores (offline ablations)."""
    return any(s.source == "reference" and s.name in ("self_certainty", "entropy") for s in specs)


def reads_policy_scores(specs: list[RewardSpec]) -> bool:
    """True when a reward reads the current policy's scores (online self-certainty or entropy)."""
    return any(s.source == "policy" and s.name in ("self_certainty", "entropy") for s in specs)
