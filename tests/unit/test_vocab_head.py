"""The vocabulary head's hand-written backward vs autograd through the plain formula (float64), and
its bf16 forward vs autocast's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.modeling.certainty import certainty_and_entropy
from pipeline.modeling.vocab_head import chunk_scores, compute_weight


def _inputs(m: int, h: int, v: int, dtype: torch.dtype, seed: int = 0, with_bias: bool = True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(m, h, generator=g, dtype=dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=g, dtype=dtype) * 0.7).requires_grad_()
    bias = (torch.randn(v, generator=g, dtype=dtype) * 0.3).requires_grad_() if with_bias else None
    tokens = torch.randint(0, v, (m,), generator=g)
    return hidden, weight, bias, tokens


@pytest.mark.parametrize("inv_temp", [1.0, 1 / 0.7])
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradient_matches_autograd_of_the_plain_formula_float64(inv_temp: float, with_bias: bool) -> None:
    hidden, weight, bias, tokens = _inputs(6, 5, 11, torch.float64, seed=3, with_bias=with_bias)
    upstream = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))

    lp, sc, ent = chunk_scores(hidden, weight, bias, compute_weight(weight), tokens, inv_temp, 1.0)
    (lp * upstream).sum().backward()
    ours = [t.grad.clone() for t in (hidden, weight, bias) if t is not None]
    for t in (hidden, weight, bias):
        if t is not None:
            t.grad = None

    z = F.linear(hidden, weight, bias) * inv_temp  # [m, V]
    ref = z.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)
    (ref * upstream).sum().backward()
    theirs = [t.grad for t in (hidden, weight, bias) if t is not None]

    torch.testing.assert_close(lp, ref.detach(), rtol=1e-12, atol=1e-12, check_dtype=False)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # certainty and entropy come from the untempered logits, never differentiable
    want_sc, want_ent = certainty_and_entropy(F.linear(hidden, weight, bias).detach())
    torch.testing.assert_close(sc.double(), want_sc, rtol=1e-6, atol=0)
    torch.testing.assert_close(ent.double(), want_ent, rtol=1e-6, atol=0)
    assert not sc.requires_grad and not ent.requires_grad


def test_passes_torch_gradcheck() -> None:
    hidden, weight, bias, tokens = _inputs(3, 4, 7, torch.float64, seed=1)

    def f(h, w, b):
        return chunk_scores(h, w, b, w, tokens, 1.3, None)[0]

    assert torch.autograd.gradcheck(f, (hidden, weight, bias))


def test_without_certainty_returns_zeros() -> None:
    hidden, weight, bias, tokens = _inputs(4, 5, 9, torch.float32)
    _, sc, ent = chunk_scores(hidden, weight, bias, compute_weight(weight), tokens, 1.0, None)
    assert torch.all(sc == 0) and torch.all(ent == 0)


def test_bf16_forward_equals_autocast_and_gradient_agrees() -> None:
    """Under bf16 autocast: the same bf16 product as autocast's linear, so identical log-probs and
    certainty; the gradient (float32 softmax, bf16 products) agrees with autograd through autocast."""
    hidden, weight, _, tokens = _inputs(64, 32, 500, torch.float32, seed=5, with_bias=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = compute_weight(weight)
        assert cast.dtype == torch.bfloat16 and not cast.requires_grad
        lp, sc, _ = chunk_scores(hidden, weight, None, cast, tokens, 1.0, 1.0)
        z = F.linear(hidden, weight).float()
    lp.sum().backward()
    ours = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    ref = z.gather(-1, tokens[:, None]).squeeze(-1) - torch.logsumexp(z, -1)
    ref.sum().backward()
    assert torch.equal(lp, ref.detach())
    assert torch.equal(sc, certainty_and_entropy(z.detach())[0].float())
    assert ours[1].dtype == torch.float32  # the weight's gradient accumulates in its own dtype
    for a, b in zip(ours, (hidden.grad, weight.grad), strict=True):
        cos = F.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cos > 0.9999, cos
