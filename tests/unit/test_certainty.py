"""certainty_and_entropy vs the definitions, in float64, across its row blocks."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.modeling.certainty import certainty_and_entropy


def _definition(logits: torch.Tensor, inv_temp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(U || p) = sum_j (1/V) (log(1/V) - log p_j) and H(p) = -sum_j p_j log p_j, by the letter."""
    logp = torch.log_softmax(logits.double() * inv_temp, dim=-1)  # [m, V]
    vocab = logits.shape[-1]
    kl = (-math.log(vocab) - logp).mean(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return kl, entropy


@pytest.mark.parametrize("block_rows", [1, 5, 16, 64])
@pytest.mark.parametrize("inv_temp", [1.0, 1 / 0.7])
def test_matches_definition_across_blocks(block_rows: int, inv_temp: float) -> None:
    g = torch.Generator().manual_seed(0)
    # 37 rows: a ragged last block for every block size; a few sharp rows (large certainty)
    logits = torch.randn(37, 1000, generator=g) * torch.linspace(0.1, 12.0, 37)[:, None]
    want_kl, want_h = _definition(logits, inv_temp)
    kl, h = certainty_and_entropy(logits, inv_temp, block_rows=block_rows)
    assert kl.dtype == h.dtype == torch.float64
    torch.testing.assert_close(kl, want_kl, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(h, want_h, rtol=1e-9, atol=1e-9)


def test_blocks_do_not_change_the_values_and_leave_the_input() -> None:
    logits = torch.randn(50, 777, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    before = logits.clone()
    whole = certainty_and_entropy(logits, 1.3, block_rows=50)
    for rows in (1, 7, 16):
        blocked = certainty_and_entropy(logits, 1.3, block_rows=rows)
        assert torch.equal(blocked[0], whole[0]) and torch.equal(blocked[1], whole[1])
    assert torch.equal(logits, before)


def test_uniform_logits_have_zero_certainty_and_full_entropy() -> None:
    kl, h = certainty_and_entropy(torch.zeros(3, 500))
    torch.testing.assert_close(kl, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(h, torch.full((3,), math.log(500), dtype=torch.float64), rtol=0, atol=1e-12)
