"""Advantages and the GRPO loss against hand-computed values and brute-force references."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from pipeline.rl.advantages import group_advantages
from pipeline.rl.loss import grpo_loss, k3_kl, token_weights


def test_group_advantages_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 3.0]])
    adv = group_advantages(rewards, std_eps=1e-4)
    # group 0: mean 0.5, unbiased std sqrt(1/3); group 2: mean 0.75, std 1.5
    s0 = math.sqrt(1 / 3) + 1e-4
    expected = [
        [0.5 / s0, -0.5 / s0, -0.5 / s0, 0.5 / s0],
        [0.0] * 4,
        [x / 1.5001 for x in (-0.75,) * 3 + (2.25,)],
    ]
    torch.testing.assert_close(adv, torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_group_advantages_brute_force_random() -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(6, 7, generator=g, dtype=torch.float64) * 5
    adv = group_advantages(rewards, std_eps=1e-4)
    for b in range(6):
        row = rewards[b].tolist()
        mu, sd = statistics.fmean(row), statistics.stdev(row)
        torch.testing.assert_close(
            adv[b].double(), torch.tensor([(x - mu) / (sd + 1e-4) for x in row]).double()
        )


def test_zero_variance_group_is_exactly_zero_and_dr_grpo_unscaled() -> None:
    # 0.1 * 3 sums with round-off: the mean is not exactly 0.1, yet the advantage must be 0.
    rewards = torch.tensor([[0.1, 0.1, 0.1], [1.0, 2.0, 6.0]], dtype=torch.float64)
    adv = group_advantages(rewards, scale_by_std=True)
    assert torch.all(adv[0] == 0)
    dr = group_advantages(rewards, scale_by_std=False)
    torch.testing.assert_close(dr[1], torch.tensor([-2.0, -1.0, 3.0]))
    assert torch.all(dr[0] == 0)


# Two sequences, old log-probs 0, ratios r = [1.5, 0.5, 1.0] in both; A = +1 and -1; clip 0.2.
# seq 0 (mask 1 1 0):   min(1.5, 1.2) = 1.2 -> -1.2 (clipped);  min(0.5, 0.8) = 0.5 -> -0.5
# seq 1 (mask 1 1 1):   min(-1.5, -1.2) -> 1.5;  min(-0.5, -0.8) -> 0.8 (clipped);  -1 -> 1.0
# grpo   = mean(-1.7 / 2, 3.3 / 3) = (-0.85 + 1.1) / 2 = 0.125
# bnpo   = (-1.7 + 3.3) / 5 = 0.32 (one micro-batch: the same as dapo)
# dr_grpo (C_max = 4) = 1.6 / (2 * 4) = 0.2
RATIOS = torch.tensor([[1.5, 0.5, 1.0], [1.5, 0.5, 1.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
ADV = torch.tensor([1.0, -1.0])


@pytest.mark.parametrize(
    ("aggregation", "expected"), [("grpo", 0.125), ("bnpo", 0.32), ("dapo", 0.32), ("dr_grpo", 0.2)]
)
def test_clipped_surrogate_hand_computed(aggregation: str, expected: float) -> None:
    logp = RATIOS.log()
    w = token_weights(MASK, aggregation, max_completion_length=4)
    terms = grpo_loss(logp, torch.zeros_like(logp), ADV, w, clip_eps_low=0.2, clip_eps_high=0.2)
    assert terms.loss.item() == pytest.approx(expected, abs=1e-6)
    assert terms.clipped_tokens.item() == 2
    assert terms.tokens.item() == 5


def test_k3_kl_hand_computed_and_in_loss() -> None:
    # ref = 0, l = log r:  k3 = exp(-l) + l - 1;  r = 1.5: 2/3 + 0.405465 - 1 = 0.072132
    #                                             r = 0.5: 2 - 0.693147 - 1 = 0.306853;  r = 1: 0
    logp = RATIOS.log()
    k3 = k3_kl(logp, torch.zeros_like(logp))
    torch.testing.assert_close(k3[0], torch.tensor([0.0721318, 0.3068528, 0.0]), rtol=1e-5, atol=1e-7)
    w = token_weights(MASK, "bnpo")
    terms = grpo_loss(
        logp,
        torch.zeros_like(logp),
        ADV,
        w,
        clip_eps_low=0.2,
        clip_eps_high=0.2,
        beta=0.1,
        ref_logprobs=torch.zeros_like(logp),
    )
    # bnpo KL = 2 * (0.0721318 + 0.3068528) / 5 = 0.1515938; loss = 0.32 + 0.1 * 0.1515938
    assert terms.kl.item() == pytest.approx(0.1515938, abs=1e-6)
    assert terms.loss.item() == pytest.approx(0.3351594, abs=1e-6)


def test_asymmetric_clip() -> None:
    # eps_high = 0.6 lets r = 1.5 through unclipped for a positive advantage.
    logp = RATIOS.log()
    w = token_weights(MASK, "bnpo")
    terms = grpo_loss(logp, torch.zeros_like(logp), ADV, w, clip_eps_low=0.2, clip_eps_high=0.6)
    # seq 0: -1.5 - 0.5; seq 1: 1.5 + 0.8 + 1.0 -> (−2.0 + 3.3) / 5 = 0.26
    assert terms.loss.item() == pytest.approx(0.26, abs=1e-6)


def test_beta_needs_reference() -> None:
    w = token_weights(MASK, "bnpo")
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(RATIOS.log(), RATIOS.log(), ADV, w, clip_eps_low=0.2, clip_eps_high=0.2, beta=0.1)


@pytest.mark.parametrize("aggregation", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_micro_batches_sum_to_full_batch(aggregation: str) -> None:
    """Gradient accumulation over micro-batches gives exactly the full-batch loss and gradient."""
    g = torch.Generator().manual_seed(1)
    n, c = 6, 5
    mask = (torch.rand(n, c, generator=g) > 0.3).float()
    mask[:, 0] = 1
    base = torch.randn(n, c, generator=g, dtype=torch.float64).float()
    old = base + 0.1 * torch.randn(n, c, generator=g)
    ref = base + 0.1 * torch.randn(n, c, generator=g)
    adv = torch.randn(n, generator=g)
    slices = [slice(0, 2), slice(2, 5), slice(5, 6)]
    w = token_weights(mask, aggregation, max_completion_length=8, micro_batches=slices)
    kw = {"clip_eps_low": 0.2, "clip_eps_high": 0.28, "beta": 0.05}

    full_p = base.clone().requires_grad_(True)
    full = grpo_loss(full_p, old, adv, w, ref_logprobs=ref, **kw).loss
    full.backward()

    mb_p = base.clone().requires_grad_(True)
    total = torch.zeros(())
    for sl in slices:
        part = grpo_loss(mb_p[sl], old[sl], adv[sl], w[sl], ref_logprobs=ref[sl], **kw).loss
        part.backward()
        total = total + part.detach()
    torch.testing.assert_close(total, full.detach())
    torch.testing.assert_close(mb_p.grad, full_p.grad)


def test_unknown_aggregation_and_uncovered_rows() -> None:
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        token_weights(MASK, "token_sum")
    with pytest.raises(ValueError, match="do not cover"):
        token_weights(MASK, "bnpo", micro_batches=[slice(0, 1)])


# ---------------------------------------------------------------- TRL's aggregation, brute force
def _trl_micro_batch_loss(
    per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, c_max: int, accumulation: int, tokens: float
) -> torch.Tensor:
    """GRPOTrainer._compute_loss (trl 1.16) on one micro-batch of one process, written out as TRL
    writes it: per_token [n, C] (surrogate + beta * k3), mask [n, C]; `tokens` is num_items_in_batch
    divided by the process count (dapo)."""
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
        return loss / accumulation
    if loss_type == "bnpo":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0) / accumulation
    if loss_type == "dr_grpo":
        return (per_token * mask).sum() / (per_token.shape[0] * c_max) / accumulation
    assert loss_type == "dapo"
    return (per_token * mask).sum() / tokens


def _per_token(logp, old, adv, ref, eps, beta):
    # The same per-token terms as TRL: -min(r A, clip(r) A) + beta * k3, float64, no shared code.
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 1 - eps, 1 + eps)
    surrogate = -torch.min(ratio * adv[:, None], clipped * adv[:, None])
    d = ref - logp
    return surrogate + beta * (torch.exp(d) - d - 1)


@pytest.mark.parametrize("aggregation", ["grpo", "bnpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("processes", [1, 2])
def test_aggregation_matches_trl_brute_force(aggregation: str, processes: int) -> None:
    """Loss and gradient of our weighted sum equal TRL's: each micro-batch's loss / K accumulated, the
    processes' gradients averaged (DDP), in float64, with unequal micro-batches and ragged masks."""
    g = torch.Generator().manual_seed(7)
    n, c, c_max, eps, beta = 12, 6, 8, 0.2, 0.04
    mask = (torch.rand(n, c, generator=g) > 0.35).double()
    mask[:, 0] = 1
    mask[3] = 0  # an empty completion
    base = torch.randn(n, c, generator=g, dtype=torch.float64)
    old = base + 0.2 * torch.randn(n, c, generator=g, dtype=torch.float64)
    ref = base + 0.2 * torch.randn(n, c, generator=g, dtype=torch.float64)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    shard = n // processes
    # Each process's rows cut into 3 micro-batches of unequal sizes (2, 3, 1 rows): K = 3.
    cuts = (
        [slice(0, 2), slice(2, 5), slice(5, 6)]
        if processes == 2
        else [slice(0, 5), slice(5, 7), slice(7, 12)]
    )
    tokens_all = float(mask.sum())

    # TRL: loss per (process, micro-batch); DDP averages gradients, i.e. the mean over processes.
    trl_p = base.clone().requires_grad_(True)
    trl_total = torch.zeros((), dtype=torch.float64)
    for p in range(processes):
        rows0 = p * shard
        for mb in cuts:
            rows = slice(rows0 + mb.start, rows0 + mb.stop)
            per_token = _per_token(trl_p[rows], old[rows], adv[rows], ref[rows], eps, beta)
            loss = _trl_micro_batch_loss(
                per_token, mask[rows], aggregation, c_max, len(cuts), tokens_all / processes
            )
            trl_total = trl_total + loss / processes
    trl_total.backward()

    ours_p = base.clone().requires_grad_(True)
    ours_total = torch.zeros((), dtype=torch.float64)
    for p in range(processes):
        rows = slice(p * shard, (p + 1) * shard)
        w = token_weights(
            mask[rows],
            aggregation,
            c_max,
            micro_batches=cuts,
            processes=processes,
            total_tokens=tokens_all,
        ).double()
        for mb in cuts:  # gradient accumulation, as the trainer runs it
            glob = slice(rows.start + mb.start, rows.start + mb.stop)
            terms = grpo_loss(
                ours_p[glob],
                old[glob],
                adv[glob],
                w[mb],
                clip_eps_low=eps,
                clip_eps_high=eps,
                beta=beta,
                ref_logprobs=ref[glob],
            )
            ours_total = ours_total + terms.loss
    ours_total.backward()

    torch.testing.assert_close(ours_total.detach(), trl_total.detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(ours_p.grad, trl_p.grad, rtol=1e-6, atol=1e-9)


def test_bnpo_is_per_micro_batch_and_dapo_is_global() -> None:
    """bnpo weighs a micro-batch of short completions' tokens more (TRL semantics); dapo does not."""
    mask = torch.tensor([[1.0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    cuts = [slice(0, 2), slice(2, 4)]
    bnpo = token_weights(mask, "bnpo", micro_batches=cuts)
    assert bnpo[0, 0].item() == pytest.approx(1 / (2 * 2))  # 2 tokens in its micro-batch, K = 2
    assert bnpo[2, 0].item() == pytest.approx(1 / (8 * 2))
    dapo = token_weights(mask, "dapo", micro_batches=cuts)
    assert torch.allclose(dapo, mask / 10)
