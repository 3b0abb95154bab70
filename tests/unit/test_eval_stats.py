"""Benchmark statistics against brute-force references: pass@k by enumerating subsets, the mean interval."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from pipeline.eval.stats import headline_score, mean_interval, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k"), [(1, 0, 1), (1, 1, 1), (5, 2, 1), (5, 2, 3), (6, 1, 6), (7, 3, 4), (8, 0, 2)]
)
def test_pass_at_k_equals_the_fraction_of_k_subsets_holding_a_correct_sample(n: int, c: int, k: int) -> None:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_is_stable_for_large_n_and_rejects_bad_arguments() -> None:
    # 1 - C(190, 10) / C(200, 10) with exact integers
    exact = 1 - math.comb(190, 10) / math.comb(200, 10)
    assert pass_at_k(200, 10, 10) == pytest.approx(exact, rel=1e-12)
    for bad in ((3, 4, 1), (3, 1, 0), (3, 1, 4)):
        with pytest.raises(ValueError, match="pass@k"):
            pass_at_k(*bad)


def test_mean_interval_matches_the_normal_approximation() -> None:
    values = [0.0, 0.25, 0.5, 1.0, 1.0, 0.75]
    low, high = mean_interval(values)
    half = 1.959963984540054 * statistics.stdev(values) / math.sqrt(len(values))
    assert low == pytest.approx(statistics.mean(values) - half)
    assert high == pytest.approx(min(1.0, statistics.mean(values) + half))
    assert mean_interval([1.0] * 4) == (1.0, 1.0)
    assert all(math.isnan(x) for x in mean_interval([0.5]))


def test_headline_score_prefers_score_and_keeps_none_for_unjudged_benchmarks() -> None:
    # "score" wins over the metric-named key; old files have only "accuracy"; a judge that did not run
    # leaves score None, which must stay None rather than fall back to another number.
    assert headline_score({"score": 0.25, "accuracy": 0.5}) == 0.25
    assert headline_score({"accuracy": 0.5}) == 0.5
    assert headline_score({"score": None, "status": "no judge"}) is None
    assert headline_score({"n": 3}) is None
