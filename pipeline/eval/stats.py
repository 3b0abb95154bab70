"""Benchmark statistics: confidence intervals and the unbiased pass@k estimator."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (well-behaved at 0%, 100% and small n)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact ends at 0 and n successes (the formula gives them up to round-off)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def mean_interval(values: list[float], z: float = Z95) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean of per-item scores in [0, 1] (clipped to [0, 1])."""
    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return (max(0.0, mean - half), min(1.0, mean + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k).

    Written as a running product so large n does not overflow.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def headline_score(metrics: Mapping[str, Any]) -> float | None:
    """A metrics.json's headline number, or None where a benchmark has none (a judge that did not run).

    "score" is the metric-agnostic key; files written before it existed carry only "accuracy"."""
    value = metrics.get("score", metrics.get("accuracy"))
    return None if value is None or isinstance(value, bool) else float(value)
