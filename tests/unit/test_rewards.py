"""Self-certainty / entropy rewards, the weighted combination, and the per-step metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.config import RewardSpec
from pipeline.rewards.registry import REWARDS, combine, get_reward, needs_reference
from pipeline.rl.metrics import group_std_mean, point_biserial, sequence_statistics, summarize_statistics
from pipeline.types import Prompt, RolloutGroup, ScoredBatch, TokenScores

B, G, C = 2, 3, 4


def _batch(texts: list[str], golds: list[str], seed: int = 0, with_reference: bool = True) -> ScoredBatch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.tensor(
        [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]]
    ).float()
    ids = torch.randint(3, 50, (B * G, C), generator=g)
    groups = [
        RolloutGroup(
            Prompt(id=str(b), messages=[], gold=golds[b]),
            torch.tensor([1, 2]),
            ids[b * G : (b + 1) * G],
            mask[b * G : (b + 1) * G].long(),
            texts[b * G : (b + 1) * G],
        )
        for b in range(B)
    ]

    def scores() -> TokenScores:
        return TokenScores(*(torch.rand(B * G, C, generator=g) * mask for _ in range(3)))

    return ScoredBatch(
        groups=groups,
        input_ids=torch.cat([torch.ones(B * G, 2, dtype=torch.long), ids], 1),
        attention_mask=torch.ones(B * G, 2 + C, dtype=torch.long),
        completion_ids=ids,
        completion_mask=mask,
        prompt_length=2,
        policy=scores(),
        reference=scores() if with_reference else None,
    )


TEXTS = ["\\boxed{4}", "\\boxed{5}", "no answer", "\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{3}"]


def _brute_mean(values: torch.Tensor, mask: torch.Tensor, i: int) -> float:
    vals = [float(v) for v, m in zip(values[i], mask[i], strict=True) if m > 0]
    return sum(vals) / len(vals)


@pytest.mark.parametrize("source", ["policy", "reference"])
def test_self_certainty_reward_is_masked_mean(source: str) -> None:
    batch = _batch(TEXTS, ["4", "0.5"])
    r = get_reward("self_certainty")(batch, RewardSpec(name="self_certainty", source=source, weight=1.0))
    sc = getattr(batch, source).self_certainty
    assert r.shape == (B, G)
    for i in range(B * G):
        assert r.flatten()[i].item() == pytest.approx(_brute_mean(sc, batch.completion_mask, i), rel=1e-6)


def test_entropy_reward_is_negative_mean_entropy() -> None:
    batch = _batch(TEXTS, ["4", "0.5"])
    r = get_reward("entropy")(batch, RewardSpec(name="entropy", weight=1.0, source="policy"))
    for i in range(B * G):
        assert r.flatten()[i].item() == pytest.approx(
            -_brute_mean(batch.policy.entropy, batch.completion_mask, i)
        )


def test_offline_reward_without_reference_pass_fails_clearly() -> None:
    batch = _batch(TEXTS, ["4", "0.5"], with_reference=False)
    with pytest.raises(ValueError, match="reference scoring pass"):
        get_reward("self_certainty")(batch, RewardSpec(name="self_certainty", source="reference", weight=1.0))


def test_combine_weights_and_components() -> None:
    batch = _batch(TEXTS, ["4", "0.5"])
    specs = [
        RewardSpec(name="gold", weight=2.0, source="policy"),
        RewardSpec(name="self_certainty", weight=0.5, source="reference"),
    ]
    total, parts = combine(specs, batch)
    assert set(parts) == {"gold", "self_certainty_reference"}
    assert parts["gold"].tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    torch.testing.assert_close(total, 2.0 * parts["gold"] + 0.5 * parts["self_certainty_reference"])
    pv = combine([RewardSpec(name="plurality_vote", weight=1.0, source="policy")], batch)[0]
    assert pv.tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]  # 4 beats 5 by index; 1/2 == 0.5


def test_registry_errors_and_reference_need() -> None:
    assert set(REWARDS) == {"self_certainty", "gold", "plurality_vote", "entropy"}
    with pytest.raises(KeyError, match=r"unknown reward .length.; registered: \[.entropy., .gold."):
        get_reward("length")
    assert needs_reference([RewardSpec(name="self_certainty", source="reference", weight=1.0)])
    assert not needs_reference(
        [
            RewardSpec(name="self_certainty", weight=1.0, source="policy"),
            RewardSpec(name="gold", weight=1.0, source="policy"),
        ]
    )


def test_point_biserial_matches_numpy() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, generator=g, dtype=torch.float64)
    y = (torch.rand(40, generator=g) > 0.6).double()
    assert point_biserial(x, y) == pytest.approx(float(np.corrcoef(x.numpy(), y.numpy())[0, 1]), rel=1e-12)
    assert math.isnan(point_biserial(x, torch.zeros(40)))


def test_group_std_and_rollout_metrics() -> None:
    per_seq = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    assert group_std_mean(per_seq) == pytest.approx(0.5)
    batch = _batch(TEXTS, ["4", "0.5"])
    batch.completion_ids[0, 3] = 2  # row 0 uses the whole budget but ends with EOS: not clipped
    total, parts = combine([RewardSpec(name="gold", weight=1.0, source="policy")], batch)
    correct = parts["gold"].float()
    answered = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    stats = sequence_statistics(batch, total, parts, correct, answered, max_new_tokens=4, eos_ids=[2])
    m = summarize_statistics(stats, batch.group_size)
    assert m["gold/accuracy"] == pytest.approx(3 / 6)
    assert m["gold/answer_rate"] == pytest.approx(5 / 6)
    assert m["completion/length_mean"] == pytest.approx((4 + 2 + 1 + 3 + 4 + 2) / 6)
    assert m["completion/clipped_ratio"] == pytest.approx(1 / 6)  # only row 4 ran out without EOS
    assert m["gold/reward_correlation"] == pytest.approx(1.0)
    assert m["kl"] >= 0
