"""GRPO-PV plurality vote and the gold reward / metrics on a small ScoredBatch."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import RewardSpec
from pipeline.rewards.gold import answer_rate, gold_correctness, gold_reward
from pipeline.rewards.plurality_vote import plurality_vote, plurality_vote_reward
from pipeline.types import Prompt, RolloutGroup, ScoredBatch


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["3", "3", "4", "5"], [1.0, 1.0, 0.0, 0.0]),  # majority
        (["4", "3", "3", "3"], [0.0, 1.0, 1.0, 1.0]),  # plurality need not include index 0
        (["4", "3", "4", "3"], [1.0, 0.0, 1.0, 0.0]),  # tie: the cluster starting at index 0 wins
        (["7", "9", "9", "7"], [1.0, 0.0, 0.0, 1.0]),  # tie again, order of first appearance decides
        (["1", "2", "3", "4"], [1.0, 0.0, 0.0, 0.0]),  # all distinct: first answer wins
        (["1/2", "0.5", r"\frac{1}{2}", "2"], [1.0, 1.0, 1.0, 0.0]),  # equivalent forms vote together
        (["2", "0.5", "1/2", "2", r"\dfrac12"], [0.0, 1.0, 1.0, 0.0, 1.0]),  # 3 equivalent beat 2 equal
        ([None, "5", None, "6", "6"], [0.0, 0.0, 0.0, 1.0, 1.0]),  # no answer: 0 and no vote
        ([None, None, "5", "6"], [0.0, 0.0, 1.0, 0.0]),  # Nones do not form a winning cluster
        ([None, None, None], [0.0, 0.0, 0.0]),  # nobody answered
        ([], []),
        (["  ", "3"], [0.0, 1.0]),  # blank answers do not vote
        # `10\%` and `10` vote together (percent sign dropped); `0.1` is a different answer.
        ([r"10\%", "10", "0.1", "7"], [1.0, 1.0, 0.0, 0.0]),
        # `10` founds a cluster that `10\%` joins; the three `0.1` outvote it.
        (["10", r"10\%", "0.1", "0.1", "0.1"], [0.0, 0.0, 1.0, 1.0, 1.0]),
    ],
)
def test_plurality_vote(answers: list[str | None], expected: list[float]) -> None:
    assert plurality_vote(answers) == expected


def _batch(texts: list[list[str]], golds: list[str | None]) -> ScoredBatch:
    """A ScoredBatch with dummy token tensors: the rewards only read texts and golds."""
    g, c, p = len(texts[0]), 3, 2
    groups = [
        RolloutGroup(
            prompt=Prompt(id=f"q{i}", messages=[{"role": "user", "content": "?"}], gold=gold),
            prompt_ids=torch.zeros(p, dtype=torch.long),
            completion_ids=torch.zeros(g, c, dtype=torch.long),
            completion_mask=torch.ones(g, c, dtype=torch.long),
            texts=group_texts,
        )
        for i, (group_texts, gold) in enumerate(zip(texts, golds, strict=True))
    ]
    n = len(texts) * g
    return ScoredBatch(
        groups=groups,
        input_ids=torch.zeros(n, p + c, dtype=torch.long),
        attention_mask=torch.ones(n, p + c, dtype=torch.long),
        completion_ids=torch.zeros(n, c, dtype=torch.long),
        completion_mask=torch.ones(n, c),
        prompt_length=p,
    )


TEXTS = [
    [r"so \boxed{\frac{1}{2}}", r"it is \boxed{0.5}.", r"\boxed{3}", "I think 0.5"],
    [r"\boxed{7}", r"\boxed{8}", r"\boxed{8}", r"\boxed{x = 7}"],
    [r"\boxed{1}", r"\boxed{2}", r"\boxed{2}", "no answer"],
]
GOLDS = ["1/2", "7", None]


def test_plurality_vote_reward() -> None:
    reward = plurality_vote_reward(
        _batch(TEXTS, GOLDS), RewardSpec(name="plurality_vote", weight=1.0, source="policy")
    )
    assert reward.shape == (3, 4)
    assert reward.dtype == torch.float32
    expected = torch.tensor(
        [
            [1.0, 1.0, 0.0, 0.0],  # 1/2 twice (the unboxed 0.5 does not vote)
            [1.0, 0.0, 0.0, 1.0],  # 7 and x=7 tie with 8, 8: the cluster founded at index 0 wins
            [0.0, 1.0, 1.0, 0.0],  # gold is irrelevant to the vote
        ]
    )
    assert torch.equal(reward, expected)


def test_gold_reward_and_metrics() -> None:
    batch = _batch(TEXTS, GOLDS)
    reward = gold_reward(batch, RewardSpec(name="gold", weight=1.0, source="policy"))
    assert reward.shape == (batch.num_prompts, batch.group_size) == (3, 4)
    assert reward.dtype == torch.float32
    expected = torch.tensor(
        [
            [1.0, 1.0, 0.0, 0.0],  # unboxed 0.5 is not rewarded
            [1.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0],  # no gold: nothing is correct
        ]
    )
    assert torch.equal(reward, expected)
    assert torch.equal(gold_correctness(batch), expected)
    rate = answer_rate(batch)
    assert rate.shape == (3, 4)
    assert torch.equal(rate, torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0] * 4, [1.0, 1.0, 1.0, 0.0]]))
