"""The bookkeeping of the vLLM certainty recorder (which request is in which batch row, which output
position each step's logits belong to) and the per-completion means, without vllm. The real engine's
recording is checked against the scoring pass in tests/integration/test_vllm_cpu.py."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.rollout.vllm import with_recorded_certainty
from pipeline.rollout.vllm_certainty import BatchRows, completion_certainty
from pipeline.types import Prompt, RolloutGroup


def _kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(U || softmax(z)) per row, by the letter, in float64."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    return (-math.log(logits.shape[-1]) - logp).mean(-1)


def test_records_each_rows_certainty_at_its_next_output_position() -> None:
    rows = BatchRows()
    out_a: list[int] = []
    out_b = [5, 6]  # b already has two tokens (e.g. resumed after preemption)
    rows.update([], [(0, "a", out_a), (2, "b", out_b), (1, None, [])], [])
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0)) * 3
    sink: dict[str, dict[int, float]] = {}
    rows.record(logits, sink)
    want = _kl_uniform(logits)
    assert set(sink) == {"a", "b"}  # row 1 records nothing
    assert sink["a"] == {0: pytest.approx(float(want[0]), rel=1e-12)}
    assert sink["b"] == {2: pytest.approx(float(want[2]), rel=1e-12)}
    out_a.append(9)  # vLLM appends the sampled token to the live list
    rows.record(logits.flip(0), sink)
    assert sink["a"][1] == pytest.approx(float(want[2]), rel=1e-12)


def test_a_discarded_sample_is_overwritten_by_the_step_that_keeps_it() -> None:
    """A chunked prefill's first chunk yields logits whose sample is dropped: the output list does not
    grow, so the next step writes the same position again."""
    rows, out, sink = BatchRows(), [], {}
    rows.update([], [(0, "a", out)], [])
    first, second = torch.zeros(1, 8), torch.tensor([[4.0, 0, 0, 0, 0, 0, 0, 0]])
    rows.record(first, sink)
    assert sink["a"][0] == pytest.approx(0.0, abs=1e-15)  # uniform logits: certainty 0
    rows.record(second, sink)
    assert sink["a"] == {0: pytest.approx(float(_kl_uniform(second)[0]), rel=1e-12)}


def test_moves_swaps_and_removals_follow_the_requests() -> None:
    rows = BatchRows()
    a, b, c = [], [], []
    rows.update([], [(0, "a", a), (1, "b", b), (2, "c", c)], [])
    rows.update([1], [], [(2, 1, False)])  # b finished; c condensed into its row
    assert {r: k for r, (k, _) in rows.rows.items()} == {0: "a", 1: "c"}
    rows.update([], [], [(0, 1, True)])  # swap
    assert {r: k for r, (k, _) in rows.rows.items()} == {0: "c", 1: "a"}
    rows.update([], [(0, None, [])], [])  # an unrecorded request takes c's row
    assert {r: k for r, (k, _) in rows.rows.items()} == {1: "a"}
    logits = torch.randn(2, 10, generator=torch.Generator().manual_seed(1))
    sink: dict[str, dict[int, float]] = {}
    rows.record(logits, sink)
    assert sink == {"a": {0: pytest.approx(float(_kl_uniform(logits)[1]), rel=1e-12)}}


def test_rows_beyond_the_logits_are_not_read() -> None:
    rows, sink = BatchRows(), {}
    rows.update([], [(0, "a", []), (3, "b", [])], [])
    rows.record(torch.randn(2, 6), sink)
    assert set(sink) == {"a"}


def test_completion_means_over_the_masked_positions() -> None:
    sink = {"a": {0: 1.0, 1: 2.0, 2: 6.0}, "b": {0: 1.0, 2: 3.0}}
    assert completion_certainty(sink, "a", 2) == pytest.approx(1.5)  # positions past the mask unused
    assert completion_certainty(sink, "b", 3) is None  # position 1 missing
    assert completion_certainty(sink, "c", 0) == 0.0  # an empty completion, as the HF engine
    assert sink == {}  # consumed


def _group(lengths: list[int]) -> RolloutGroup:
    width = max(lengths)
    ids = torch.ones(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width)
    for j, n in enumerate(lengths):
        mask[j, :n] = 1
    return RolloutGroup(
        Prompt(id="p", messages=[]), torch.ones(3, dtype=torch.long), ids, mask, [""] * len(lengths)
    )


def test_groups_get_their_completions_means_or_none_when_a_position_is_missing() -> None:
    groups = [_group([2, 1]), _group([3, 1])]
    sink = {"k0": {0: 1.0, 1: 3.0}, "k1": {0: 5.0}, "k2": {0: 1.0, 1: 1.0, 2: 4.0}, "k3": {0: 7.0}}
    got = with_recorded_certainty(groups, dict(sink), ["k0", "k1", "k2", "k3"])
    assert got[0].self_certainty.tolist() == [2.0, 5.0]
    assert got[1].self_certainty.tolist() == [2.0, 7.0]
    assert got[0].self_certainty.dtype == torch.float64
    partial = dict(sink, k2={0: 1.0, 2: 4.0})
    unchanged = with_recorded_certainty(groups, partial, ["k0", "k1", "k2", "k3"])
    assert all(g.self_certainty is None for g in unchanged)  # the runner's scoring pass takes over
    assert partial == {}
