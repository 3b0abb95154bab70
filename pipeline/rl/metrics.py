"""Per-step monitoring statistics computed from a scored, rewarded batch."""

from __future__ import annotations

import math

import torch

from pipeline.rl.scoring import masked_sequence_mean
from pipeline.types import ScoredBatch


def point_biserial(values: torch.Tensor, binary: torch.Tensor) -> float:
    """Pearson correlation between a continuous variable and a 0/1 variable (NaN if either is constant).

    Logged between the method's reward and gold correctness: if INTUITOR's reward decouples from
    correctness (reward hacking / collapse), this drops toward 0 or below.
    """
    x = values.double().flatten()
    y = binary.double().flatten()
    if x.numel() < 2 or torch.all(x == x[0]) or torch.all(y == y[0]):
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    return float((xc * yc).sum() / torch.sqrt((xc * xc).sum() * (yc * yc).sum()))


def group_std_mean(per_seq: torch.Tensor) -> float:
    """Mean over groups of the within-group (unbiased) std of a [B, G] statistic."""
    if per_seq.shape[1] < 2:
        return 0.0
    return float(per_seq.double().std(dim=1).mean())


def rollout_metrics(
    batch: ScoredBatch,
    total_reward: torch.Tensor,
    components: dict[str, torch.Tensor],
    correct: torch.Tensor,
    answered: torch.Tensor,
    max_new_tokens: int,
    eos_ids: list[int],
) -> dict[str, float]:
    """Reward, self-certainty, gold accuracy, lengths, entropy and KL of one step's rollouts."""
    b, g = batch.num_prompts, batch.group_size
    mask = batch.completion_mask
    lengths = mask.sum(-1)  # [N]
    # Clipped = ran out of budget without an EOS: the last masked-in token is not an EOS.
    last = batch.completion_ids.gather(1, (lengths.long() - 1).clamp(min=0)[:, None]).squeeze(1)
    clipped = (lengths >= max_new_tokens) & ~torch.isin(last, torch.tensor(eos_ids))
    out: dict[str, float] = {
        "reward/mean": float(total_reward.mean()),
        "reward/std": float(total_reward.std()) if total_reward.numel() > 1 else 0.0,
        "reward/group_std": group_std_mean(total_reward),
        "gold/accuracy": float(correct.mean()),
        "gold/answer_rate": float(answered.mean()),
        "gold/reward_correlation": point_biserial(total_reward, correct),
        "completion/length_mean": float(lengths.mean()),
        "completion/length_max": float(lengths.max()),
        "completion/clipped_ratio": float(clipped.float().mean()),
    }
    for name, r in components.items():
        out[f"reward/{name}/mean"] = float(r.mean())
    if batch.policy is not None:
        sc = masked_sequence_mean(batch.policy.self_certainty, mask).view(b, g)
        out["self_certainty/mean"] = float(sc.mean())
        out["self_certainty/group_std"] = group_std_mean(sc)
        out["entropy/mean"] = float(masked_sequence_mean(batch.policy.entropy, mask).mean())
    if batch.reference is not None:
        ref_sc = masked_sequence_mean(batch.reference.self_certainty, mask)
        out["self_certainty/reference_mean"] = float(ref_sc.mean())
        if batch.policy is not None:
            diff = batch.reference.logprobs - batch.policy.logprobs
            k3 = (torch.exp(diff) - diff - 1.0) * mask
            out["kl"] = float(k3.sum() / mask.sum().clamp(min=1))
    return out
