"""The GRPO objective: clipped surrogate + k3 KL to the reference, with TRL's four aggregations.

Aggregation is expressed as per-token weights computed once for the WHOLE step, so that the sum over
micro-batches (and processes) of sum(per_token_loss * weight) is exactly what TRL's GRPOTrainer
(`_compute_loss`, trl 1.16) backpropagates for the same micro-batches: each micro-batch's loss
divided by the gradient-accumulation count K (micro-batches per process and optimizer step), and the
processes' gradients averaged by DDP over W processes. With n_m rows and T_m tokens in micro-batch m:
- grpo:    mean over each sequence's tokens, then over the micro-batch's rows -> w = 1 / (|o_i| n_m K W)
- bnpo:    token mean of the micro-batch (the official INTUITOR code)         -> w = 1 / (T_m K W)
- dr_grpo: token sum / (n_m C_max), C_max = max_new_tokens                    -> w = 1 / (n_m C_max K W)
- dapo:    token mean of the whole step, all processes (TRL's num_items_in_batch) -> w = 1 / T_step
So bnpo, grpo and dr_grpo depend on how the step is cut into micro-batches (as in TRL: a micro-batch of
short completions weighs its tokens more under bnpo); dapo does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AGGREGATIONS = ("grpo", "bnpo", "dapo", "dr_grpo")


def token_weights(
    completion_mask: torch.Tensor,
    aggregation: str,
    max_completion_length: int | None = None,
    *,
    micro_batches: list[slice] | None = None,
    processes: int = 1,
    total_tokens: float | None = None,
) -> torch.Tensor:
    """[N, C] weights that turn per-token losses into the step loss (0 on masked-out tokens).

    `completion_mask` [N, C] is this process's share of the step, cut into `micro_batches` (row
    slices covering it in order; default: one micro-batch). `processes` is the number of training
    processes (each with as many micro-batches as this one) and `total_tokens` the whole step's
    completion tokens over all of them (dapo; default: this mask's own).
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {aggregation!r}; expected one of {list(AGGREGATIONS)}")
    mask = completion_mask.double()
    if aggregation == "dapo":
        tokens = float(mask.sum()) if total_tokens is None else float(total_tokens)
        return (mask / max(tokens, 1.0)).float()
    slices = micro_batches if micro_batches is not None else [slice(0, mask.shape[0])]
    covered = [i for rows in slices for i in range(mask.shape[0])[rows]]
    if covered != list(range(mask.shape[0])):
        raise ValueError(f"micro-batches {slices} do not cover the {mask.shape[0]} rows once, in order")
    # Each micro-batch's loss is divided by K (accumulation) and W (DDP's mean over processes).
    scale = len(slices) * processes
    c_max = max_completion_length if max_completion_length is not None else mask.shape[1]
    w = torch.zeros_like(mask)
    for rows in slices:
        m = mask[rows]  # [n_m, C]
        if aggregation == "grpo":
            w[rows] = m / (m.sum(-1, keepdim=True).clamp(min=1) * m.shape[0] * scale)
        elif aggregation == "bnpo":
            w[rows] = m / (m.sum().clamp(min=1) * scale)
        else:  # dr_grpo
            w[rows] = m / (m.shape[0] * c_max * scale)
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
