"""Per-request sampling (Gumbel-max with hashed noise): the hash, the nucleus, the sampled distribution,
and rollouts that do not depend on batching or sharding."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.config import SamplingConfig
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.rollout.sampling import SeededSampler, mix32, nucleus_mask, request_seed, uniform_noise


def _lowbias32_reference(x: int) -> int:
    # Independent scalar implementation with Python's unbounded ints.
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x21F0AAAD) % 2**32
    x ^= x >> 15
    x = (x * 0x735A2D97) % 2**32
    return x ^ (x >> 15)


def test_mix32_matches_scalar_reference() -> None:
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1, 0x9E3779B9, 987654321]
    got = mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [_lowbias32_reference(v) for v in values]
    assert all(0 <= v < 2**32 for v in got)


def test_uniform_noise_is_uniform_and_keyed() -> None:
    u = uniform_noise(torch.arange(64, dtype=torch.int64), 4096)  # [64, 4096]
    assert float(u.min()) > 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002
    # rows with different keys are not shifted copies of each other
    assert not torch.equal(u[0], u[1])
    assert float(torch.corrcoef(u[:2])[0, 1]) < 0.05


def _nucleus_reference(logits: list[float], top_p: float) -> set[int]:
    # float64 brute force: add tokens from most to least likely until the mass reaches top_p.
    m = max(logits)
    w = [math.exp(z - m) for z in logits]
    s = sum(w)
    p = [x / s for x in w]
    keep, mass = set(), 0.0
    for i in sorted(range(len(p)), key=lambda i: -p[i]):
        keep.add(i)
        mass += p[i]
        if mass >= top_p:
            break
    return keep


@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.9, 0.999, 1.0])
def test_nucleus_mask_matches_brute_force(top_p: float) -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(20, 30, generator=g, dtype=torch.float64) * 2
    mask = nucleus_mask(logits, top_p)
    for row, m in zip(logits.tolist(), mask.tolist(), strict=True):
        assert {i for i, k in enumerate(m) if k} == _nucleus_reference(row, top_p)


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.6, 1.0), (1.3, 0.8)])
def test_sampled_frequencies_match_the_distribution(temperature: float, top_p: float) -> None:
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    n = 40_000
    sampler = SeededSampler([request_seed(5, i, 0) for i in range(n)], 0, temperature, top_p)
    picks = sampler(torch.zeros(n, 3, dtype=torch.long), logits.expand(n, -1)).argmax(-1)
    freq = torch.bincount(picks, minlength=6).double() / n
    # reference in float64: softmax(z / T) restricted to the nucleus, renormalised
    p = torch.softmax(logits.double() / temperature, -1)
    keep = torch.tensor([i in _nucleus_reference((logits / temperature).tolist(), top_p) for i in range(6)])
    expected = torch.where(keep, p, 0) / p[keep].sum()
    assert torch.all(freq[~keep] == 0)
    sigma = torch.sqrt(expected * (1 - expected) / n)
    assert torch.all((freq - expected).abs() <= 4 * sigma + 1e-12), (freq, expected)


def test_noise_depends_on_position() -> None:
    sampler = SeededSampler([request_seed(0, 0, 0)] * 4000, 2, 1.0)
    logits = torch.zeros(4000, 8)
    first = sampler(torch.zeros(4000, 3, dtype=torch.long), logits).argmax(-1)  # position 1
    assert len(set(first.tolist())) == 1  # the same request at the same position: the same token
    picks = [int(sampler(torch.zeros(1, 2 + k, dtype=torch.long), logits[:1]).argmax()) for k in range(64)]
    assert len(set(picks)) > 4  # across positions the draws vary


def test_request_seed_is_stable_and_distinct() -> None:
    assert request_seed(3, 1, 2) == request_seed(3, 1, 2)
    seeds = {request_seed(s, i, j) for s in range(3) for i in range(20) for j in range(8)}
    assert len(seeds) == 3 * 20 * 8 and all(0 <= x < 2**63 for x in seeds)


def test_rollouts_do_not_depend_on_batching_or_sharding(tiny_model, tokenizer, toy_prompts) -> None:
    engine = HFRolloutEngine(tiny_model, tokenizer, show_progress=False)
    prompts = toy_prompts[:4]  # different lengths: the batches are padded differently
    one_batch = SamplingConfig(temperature=1.0, max_new_tokens=12, batch_size=64)
    small_batches = SamplingConfig(temperature=1.0, max_new_tokens=12, batch_size=3)
    whole = engine.generate(prompts, 3, one_batch, seed=9)
    rebatched = engine.generate(prompts, 3, small_batches, seed=9)
    # the second "process" holds prompts 2 and 3 of the global batch
    shard = engine.generate(prompts[2:], 3, one_batch, seed=9, first_prompt=2)
    unshifted = engine.generate(prompts[2:], 3, one_batch, seed=9)

    def rows(groups):
        return [
            r[m.bool()].tolist()
            for g in groups
            for r, m in zip(g.completion_ids, g.completion_mask, strict=True)
        ]

    assert rows(whole) == rows(rebatched)
    assert rows(whole)[6:] == rows(shard)
    assert rows(whole)[6:] != rows(unshifted)
    assert len({tuple(r) for r in rows(whole)}) > 6  # samples, not one greedy answer repeated
