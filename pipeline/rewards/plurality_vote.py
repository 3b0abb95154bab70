"""The `plurality_vote` reward (GRPO-PV): label-free, the group's most common answer stands in for gold.

Per group: every completion with a boxed answer votes for it; equivalent answers (math-verify) form one
cluster; members of the largest cluster get 1.0 and everybody else 0.0. Completions without an answer
get 0.0 and do not vote.
"""

from __future__ import annotations

import torch

from pipeline.config import RewardSpec
from pipeline.eval.math_grader import answers_equivalent, extract_answer
from pipeline.types import ScoredBatch


def plurality_vote(answers: list[str | None]) -> list[float]:
    """Per-completion vote reward for one group of extracted answers (None = no answer).

    Clustering is greedy in completion order: each answer joins the first existing cluster whose
    representative (its first member) is `answers_equivalent` to it, else it starts a new cluster.
    Equivalence under math-verify is not transitive (numeric tolerance, lenient unit handling:
    `5 \\text{ cm}` ~ `5` and `5` ~ `5.0000001`, ...), so comparing against one fixed
    representative keeps the result well defined and independent of anything but completion order.
    The largest cluster wins; a tie goes to the cluster whose first member has the lowest index.
    """
    clusters: list[list[int]] = []  # member indices; clusters[k][0] is the representative
    for i, answer in enumerate(answers):
        if answer is None or not answer.strip():
            continue
        for members in clusters:
            if answers_equivalent(answer, answers[members[0]]):  # type: ignore[arg-type]
                members.append(i)
                break
        else:
            clusters.append([i])
    rewards = [0.0] * len(answers)
    if not clusters:
        return rewards
    # Clusters are created in order of their first member, so the first largest one breaks ties.
    winner = max(clusters, key=lambda members: (len(members), -members[0]))
    for i in winner:
        rewards[i] = 1.0
    return rewards


def plurality_vote_reward(batch: ScoredBatch, spec: RewardSpec) -> torch.Tensor:
    """[B, G] float32: 1.0 for completions whose boxed answer is in their group's plurality cluster."""
    del spec  # no options beyond its weight, which `combine` applies
    rows = [
        plurality_vote([extract_answer(t, g.prompt.answer_fallback).answer for t in g.texts])
        for g in batch.groups
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(batch.num_prompts, batch.group_size)
