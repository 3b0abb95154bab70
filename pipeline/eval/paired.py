"""Paired comparisons of two models on the same items: McNemar's exact test and a paired bootstrap.

Two models graded on the same items are not independent samples: overlapping 95% intervals of two
accuracies say little when most items are answered alike. What matters is the discordant items (one
right, the other wrong): McNemar's exact test is the two-sided binomial test of those counts at p = 1/2,
and the paired bootstrap resamples items (both models' grades together) for an interval of the
difference.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedComparison:
    """Model a against model b on the n items both were graded on (a score is in [0, 1] per item)."""

    n: int
    mean_a: float
    mean_b: float
    # items a got right and b wrong, and the reverse (binary scores only; fractional ones count by sign)
    a_only: int
    b_only: int
    # two-sided exact McNemar p-value (1.0 when no item is discordant)
    p_value: float
    # paired bootstrap 95% interval of mean_a - mean_b
    diff_low: float
    diff_high: float

    @property
    def diff(self) -> float:
        return self.mean_a - self.mean_b


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: P(a binomial(a_only + b_only, 1/2) count is as far from half).

    Summed in log space, so hundreds of discordant items do not underflow.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only}, {b_only}")
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    log_half_n = -n * math.log(2.0)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n)
        for i in range(k + 1)
    )
    return min(1.0, 2.0 * tail)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% interval of mean(a) - mean(b), resampling items with both scores together."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return (math.nan, math.nan)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return (means[int(0.025 * (resamples - 1))], means[math.ceil(0.975 * (resamples - 1))])


def compare(
    a: Mapping[str, float], b: Mapping[str, float], resamples: int = 2000, seed: int = 0
) -> PairedComparison:
    """Compare per-item scores (item id -> score) on the items both have; raises if they share none."""
    items = sorted(set(a) & set(b))
    if not items:
        raise ValueError("the two models share no graded item: nothing to pair")
    sa, sb = [float(a[i]) for i in items], [float(b[i]) for i in items]
    a_only = sum(1 for x, y in zip(sa, sb, strict=True) if x > y)
    b_only = sum(1 for x, y in zip(sa, sb, strict=True) if y > x)
    low, high = paired_bootstrap(sa, sb, resamples, seed)
    return PairedComparison(
        n=len(items),
        mean_a=sum(sa) / len(sa),
        mean_b=sum(sb) / len(sb),
        a_only=a_only,
        b_only=b_only,
        p_value=mcnemar_exact(a_only, b_only),
        diff_low=low,
        diff_high=high,
    )


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of `scores` for `labels` (Mann-Whitney U / (pos x neg), ties count 1/2).

    The probability that a random positive outscores a random negative; nan without both classes.
    Computed from average ranks: O(n log n).
    """
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels differ in length: {len(scores)} vs {len(labels)}")
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return math.nan
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for t in range(i, j + 1):  # tied scores share their average rank (1-based)
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
