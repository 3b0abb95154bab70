"""Paired comparisons against brute-force float64 references: McNemar by enumerating every sign
assignment of the discordant items, AUROC by comparing every (positive, negative) pair, the paired
bootstrap against the exact distribution of a tiny resample space."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from pipeline.eval.paired import auroc, compare, mcnemar_exact, paired_bootstrap


def _mcnemar_brute(a_only: int, b_only: int) -> float:
    """Two-sided: the probability, under fair coin flips of every discordant item, of a split at least
    as uneven as the one seen (counted over all 2^n outcomes, exactly)."""
    n = a_only + b_only
    seen = abs(a_only - b_only)
    extreme = sum(1 for flips in itertools.product((0, 1), repeat=n) if abs(2 * sum(flips) - n) >= seen)
    return min(1.0, float(Fraction(extreme, 2**n)))


@pytest.mark.parametrize(("a_only", "b_only"), [(0, 0), (1, 0), (3, 3), (0, 6), (7, 2), (1, 11), (5, 9)])
def test_mcnemar_equals_the_enumerated_sign_test(a_only: int, b_only: int) -> None:
    assert mcnemar_exact(a_only, b_only) == pytest.approx(_mcnemar_brute(a_only, b_only), abs=1e-12)


def test_mcnemar_is_symmetric_and_stays_finite_for_many_items() -> None:
    assert mcnemar_exact(9, 30) == mcnemar_exact(30, 9)
    # 1000 discordant items split 450/550 (2^1000 outcomes: too many to enumerate, so exact integers)
    p = mcnemar_exact(450, 550)
    exact = Fraction(2 * sum(math.comb(1000, i) for i in range(451)), 2**1000)
    assert p == pytest.approx(float(exact), rel=1e-9)
    assert 0.0 < p < 0.01
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def _auroc_brute(scores: list[float], labels: list[bool]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_equals_the_pairwise_win_rate_with_ties() -> None:
    rng = random.Random(3)
    for _ in range(50):
        n = rng.randint(2, 40)
        # few distinct values, so ties between and within classes are common
        scores = [float(rng.randint(0, 6)) for _ in range(n)]
        labels = [rng.random() < 0.4 for _ in range(n)]
        if all(labels) or not any(labels):
            assert math.isnan(auroc(scores, labels))
            continue
        assert auroc(scores, labels) == pytest.approx(_auroc_brute(scores, labels), abs=1e-12)


def test_auroc_ends_and_errors() -> None:
    assert auroc([1.0, 2.0, 3.0, 4.0], [False, False, True, True]) == 1.0
    assert auroc([1.0, 2.0, 3.0, 4.0], [True, True, False, False]) == 0.0
    assert auroc([5.0, 5.0], [True, False]) == 0.5
    with pytest.raises(ValueError, match="length"):
        auroc([1.0], [True, False])


def test_paired_bootstrap_interval_matches_the_exact_resampling_distribution() -> None:
    # 4 items: every one of the 4^4 resamples is equally likely; the bootstrap's percentiles of many
    # draws approach the exact distribution's quantiles
    a, b = [1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    exact = sorted(sum(diffs[i] for i in idx) / 4 for idx in itertools.product(range(4), repeat=4))
    low, high = paired_bootstrap(a, b, resamples=20000, seed=1)
    assert low == exact[int(0.025 * len(exact))]
    assert high == exact[int(0.975 * len(exact))]
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_compare_pairs_items_by_id_and_counts_discordant_ones() -> None:
    a = {"q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 1.0, "only_a": 1.0}
    b = {"q1": 0.0, "q2": 0.0, "q3": 1.0, "q4": 0.0, "only_b": 0.0}
    c = compare(a, b, resamples=500)
    assert (c.n, c.a_only, c.b_only) == (4, 2, 0)
    assert (c.mean_a, c.mean_b, c.diff) == (0.75, 0.25, 0.5)
    assert c.p_value == pytest.approx(_mcnemar_brute(2, 0))
    assert c.diff_low <= c.diff <= c.diff_high
    with pytest.raises(ValueError, match="share no graded item"):
        compare({"x": 1.0}, {"y": 1.0})
