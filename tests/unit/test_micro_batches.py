"""Micro-batches by row count and token budget vs a brute-force cost of every row range."""

from __future__ import annotations

import itertools

import pytest
import torch

from pipeline.rl.batch import micro_batches, split_to


def _cost(prompt_len, comp_len, prompt_idx, rows: slice) -> int:
    """Padded tokens of a micro-batch, counted by hand: each distinct prompt once, every completion."""
    idx = prompt_idx[rows].tolist()
    distinct = len(set(idx))
    return distinct * max(prompt_len[rows].tolist()) + len(idx) * max(comp_len[rows].tolist())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_rows,max_tokens", [(8, 0), (3, 0), (32, 400), (5, 250), (32, 1)])
def test_micro_batches_cover_rows_within_budget_and_greedy(seed, max_rows, max_tokens) -> None:
    g = torch.Generator().manual_seed(seed)
    groups, size = 4, 6
    prompt_idx = torch.arange(groups).repeat_interleave(size)
    prompt_len = torch.randint(20, 120, (groups,), generator=g).repeat_interleave(size)
    comp_len = torch.randint(1, 90, (groups * size,), generator=g)
    slices = micro_batches(prompt_len, comp_len, prompt_idx, max_rows, max_tokens)
    assert slices[0].start == 0 and slices[-1].stop == groups * size
    assert all(a.stop == b.start for a, b in itertools.pairwise(slices))
    for s in slices:
        rows = s.stop - s.start
        assert 1 <= rows <= max_rows
        if max_tokens and rows > 1:
            assert _cost(prompt_len, comp_len, prompt_idx, s) <= max_tokens
        if s.stop < groups * size and rows < max_rows:
            # greedy: the next row would have broken the budget
            assert (
                max_tokens
                and _cost(prompt_len, comp_len, prompt_idx, slice(s.start, s.stop + 1)) > max_tokens
            )


def test_row_count_only_is_fixed_slices() -> None:
    n = torch.zeros(10, dtype=torch.long)
    assert micro_batches(n + 5, n + 3, n, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]


def test_split_to_equal_counts() -> None:
    out = split_to([slice(0, 6), slice(6, 8)], 4)  # the largest is halved each time
    assert out == [slice(0, 1), slice(1, 3), slice(3, 6), slice(6, 8)]
    assert split_to(out, 4) == out
    with pytest.raises(ValueError, match="cannot split"):
        split_to([slice(0, 1)], 2)
