"""The GRPO objective: clipped surrogate + k3 KL to the reference, with three aggregations.

Aggregation is expressed as per-token weights computed once over the WHOLE step batch, so that the
sum over micro-batches of sum(per_token_loss * weight) is exactly the full-batch loss: gradient
accumulation changes nothing.
- grpo:    mean over each sequence's tokens, then mean over sequences  -> w = 1 / (|o_i| * N)
- bnpo:    mean over all tokens of the batch (the paper code's default) -> w = 1 / sum_i |o_i|
- dr_grpo: sum over tokens / (N * C_max), C_max = max_new_tokens       -> w = 1 / (N * C_max)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def token_weights(
    completion_mask: torch.Tensor,
    aggregation: str,
    max_completion_length: int | None = None,
    *,
    total_sequences: int | None = None,
    total_tokens: float | None = None,
) -> torch.Tensor:
    """[N, C] weights that turn per-token losses into the batch loss (0 on masked-out tokens).

    `total_sequences` / `total_tokens` are the whole step's counts when this mask is one process's
    shard of it (default: this mask's own), so the shards' losses sum to the full-batch loss.
    """
    mask = completion_mask.double()
    n = mask.shape[0] if total_sequences is None else total_sequences
    if aggregation == "grpo":
        w = mask / (mask.sum(-1, keepdim=True).clamp(min=1) * n)
    elif aggregation == "bnpo":
        tokens = mask.sum() if total_tokens is None else torch.tensor(float(total_tokens))
        w = mask / tokens.clamp(min=1)
    elif aggregation == "dr_grpo":
        c_max = max_completion_length if max_completion_length is not None else mask.shape[1]
        w = mask / (n * c_max)
    else:
        raise ValueError(f"unknown loss aggregation {aggregation!r}; expected grpo, bnpo or dr_grpo")
    return w.float()


@dataclass
class LossTerms:
    # Scalar to backpropagate (this micro-batch's share of the batch loss).
    loss: torch.Tensor
    # Weighted sums for logging (already in batch-loss units, detach()ed).
    policy_loss: torch.Tensor
    kl: torch.Tensor
    # Number of masked-in tokens where the clipped branch was active (for the clip fraction).
    clipped_tokens: torch.Tensor
    tokens: torch.Tensor


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per token: exp(r - l) - (r - l) - 1 >= 0."""
    diff = ref_logprobs - logprobs
    return torch.exp(diff) - diff - 1.0


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    *,
    clip_eps_low: float,
    clip_eps_high: float,
    beta: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
) -> LossTerms:
    """Per-token clipped surrogate (+ beta * k3 KL), summed with the aggregation weights.

    logprobs / old_logprobs / ref_logprobs / weights: [n, C]; advantages: [n] (one per sequence).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages[:, None].to(logprobs.dtype)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high) * adv
    per_token = -torch.min(unclipped, clipped)
    policy = (per_token * weights).sum()
    kl = torch.zeros((), dtype=logprobs.dtype)
    if beta != 0.0:
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs reference log-probs")
        kl = (k3_kl(logprobs, ref_logprobs) * weights).sum()
    active = weights > 0
    clipped_tokens = ((clipped < unclipped) & active).sum()
    return LossTerms(
        loss=policy + beta * kl,
        policy_loss=policy.detach(),
        kl=kl.detach(),
        clipped_tokens=clipped_tokens,
        tokens=active.sum(),
    )
