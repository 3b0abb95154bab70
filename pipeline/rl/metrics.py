"""Per-step monitoring statistics computed from a scored, rewarded batch."""

from __future__ import annotations

import math
from typing import Any

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


def sequence_statistics(
    batch: ScoredBatch,
    total_reward: torch.Tensor,
    components: dict[str, torch.Tensor],
    correct: torch.Tensor,
    answered: torch.Tensor,
    max_new_tokens: int,
    eos_ids: list[int],
) -> dict[str, torch.Tensor]:
    """Everything the step metrics need, as [N] float64 tensors in sequence order.

    Per-sequence, so that processes holding shards of a step can concatenate them (in rank order =
    global order) and summarise the whole batch exactly as one process would.
    """
    mask = batch.completion_mask
    lengths = mask.sum(-1)  # [N]
    # Clipped = ran out of budget without an EOS: the last masked-in token is not an EOS.
    last = batch.completion_ids.gather(1, (lengths.long() - 1).clamp(min=0)[:, None]).squeeze(1)
    clipped = (lengths >= max_new_tokens) & ~torch.isin(last, torch.tensor(eos_ids))
    stats = {
        "reward": total_reward.flatten(),
        "correct": correct.flatten(),
        "answered": answered.flatten(),
        "length": lengths,
        "clipped": clipped,
    }
    for name, r in components.items():
        stats[f"reward/{name}"] = r.flatten()
    if batch.policy is not None:
        stats["self_certainty"] = masked_sequence_mean(batch.policy.self_certainty, mask)
        stats["entropy"] = masked_sequence_mean(batch.policy.entropy, mask)
    if batch.reference is not None:
        stats["reference_self_certainty"] = masked_sequence_mean(batch.reference.self_certainty, mask)
        if batch.policy is not None:
            diff = batch.reference.logprobs - batch.policy.logprobs
            stats["k3_sum"] = ((torch.exp(diff) - diff - 1.0) * mask).sum(-1)
    return {k: v.double() for k, v in stats.items()}


def summarize_statistics(stats: dict[str, torch.Tensor], group_size: int) -> dict[str, float]:
    """Reward, self-certainty, gold accuracy, lengths, entropy and KL of one step's rollouts."""
    reward, correct, lengths = stats["reward"], stats["correct"], stats["length"]
    out: dict[str, float] = {
        "reward/mean": float(reward.mean()),
        "reward/std": float(reward.std()) if reward.numel() > 1 else 0.0,
        "reward/group_std": group_std_mean(reward.view(-1, group_size)),
        "gold/accuracy": float(correct.mean()),
        "gold/answer_rate": float(stats["answered"].mean()),
        "gold/reward_correlation": point_biserial(reward, correct),
        "completion/length_mean": float(lengths.mean()),
        "completion/length_max": float(lengths.max()),
        "completion/clipped_ratio": float(stats["clipped"].mean()),
    }
    for key, r in stats.items():
        if key.startswith("reward/"):
            out[f"{key}/mean"] = float(r.mean())
    if "self_certainty" in stats:
        out["self_certainty/mean"] = float(stats["self_certainty"].mean())
        out["self_certainty/group_std"] = group_std_mean(stats["self_certainty"].view(-1, group_size))
        out["entropy/mean"] = float(stats["entropy"].mean())
    if "reference_self_certainty" in stats:
        out["self_certainty/reference_mean"] = float(stats["reference_self_certainty"].mean())
    if "k3_sum" in stats:
        # token-weighted mean of the k3 estimator over the batch
        out["kl"] = float(stats["k3_sum"].sum() / lengths.sum().clamp(min=1))
    return out


def completion_rows(
    step: int, batch: ScoredBatch, total: torch.Tensor, correct: torch.Tensor, k: int
) -> list[dict[str, Any]]:
    """The step's first k completions as table rows (prompt, gold, text, reward, correctness, certainty)."""
    g = batch.group_size
    sc = masked_sequence_mean(batch.policy.self_certainty, batch.completion_mask) if batch.policy else None
    rows: list[dict[str, Any]] = []
    for i, text in enumerate(batch.texts[:k]):
        group = batch.groups[i // g]
        rows.append(
            {
                "step": step,
                "prompt_id": group.prompt.id,
                "gold": group.prompt.gold,
                "completion": text,
                "reward": float(total.flatten()[i]),
                "correct": bool(correct.flatten()[i]),
                "self_certainty": None if sc is None else float(sc[i]),
                "length": int(batch.completion_mask[i].sum()),
            }
        )
    return rows
