"""The vocabulary projection of the scoring passes: from one chunk of hidden states, the log-prob of
each chosen token (with its gradient) and, from the same logits, self-certainty and entropy.

Why a hand-written backward: the autograd way (checkpointed `z = h W^T`, `gather - logsumexp`) ran
the [m, V] projection five times per chunk in the gradient pass (a separate no-grad one for
certainty, the checkpointed forward, its recomputation, the two gradient products), cast the
[V, H] weight to bf16 on each of them, and took `logsumexp`'s backward through broadcast temporaries.
Here the forward projects once (log-prob, certainty and entropy from the same logits), the backward
projects once more and applies d log p(t) / dz = inv_temp * (onehot(t) - softmax(inv_temp z)) in
place, and the caller casts the weight once per pass (`compute_weight`). Same forward values as the
autograd path (same bf16 products, same float32 softmax statistics); the gradient is the same
formula, cast to the compute dtype before its two products exactly as autocast casts the incoming
gradient of a bf16 linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.modeling.certainty import certainty_and_entropy


def compute_weight(weight: torch.Tensor) -> torch.Tensor:
    """The head weight [V, H] in the dtype the pass's matmuls run in: bf16 under an enabled
    autocast of the weight's device, else the weight itself. Detached: `chunk_scores` returns the
    weight's gradient in the weight's own dtype, so chunks accumulate it in float32."""
    device = weight.device.type
    if torch.is_autocast_enabled(device):
        return weight.detach().to(torch.get_autocast_dtype(device))
    return weight.detach()


class _TokenLogprob(torch.autograd.Function):
    """log p(token) [m] (the logits' dtype) from hidden [m, H]; self-certainty and entropy [m] alongside."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        cast_weight: torch.Tensor,
        tokens: torch.Tensor,
        inv_temp: float,
        certainty_inv_temp: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = _project(hidden, cast_weight, bias)  # [m, V] float32 (float64 for a float64 head)
        zt = z * inv_temp if inv_temp != 1.0 else z
        lse = torch.logsumexp(zt, dim=-1)  # [m]
        logprobs = zt.gather(-1, tokens[:, None]).squeeze(-1) - lse
        del zt
        if certainty_inv_temp is None:
            certainty = entropy = torch.zeros_like(logprobs)
        else:
            sc, ent = certainty_and_entropy(z, certainty_inv_temp)  # float64
            certainty, entropy = sc.to(z.dtype), ent.to(z.dtype)
        ctx.mark_non_differentiable(certainty, entropy)
        ctx.save_for_backward(hidden, bias, cast_weight, tokens, lse)
        ctx.inv_temp, ctx.weight_dtype = inv_temp, weight.dtype  # weight itself: only its gradient's target
        return logprobs, certainty, entropy

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor, *_: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, bias, cast_weight, tokens, lse = ctx.saved_tensors
        inv_temp = ctx.inv_temp
        h = hidden.to(cast_weight.dtype)  # [m, H], cast once for the recomputation and grad_weight
        z = _project(h, cast_weight, bias)  # [m, V], recomputed rather than stored
        if inv_temp != 1.0:
            z.mul_(inv_temp)
        # d lp / d z = inv_temp * (onehot(token) - softmax(inv_temp z)), scaled by the incoming grad [m]
        scale = grad.to(z.dtype) * inv_temp  # [m]
        grad_z = z.sub_(lse[:, None]).exp_().mul_(-scale[:, None])
        grad_z.scatter_add_(-1, tokens[:, None], scale[:, None])
        gz = grad_z.to(cast_weight.dtype)  # [m, V]
        grad_hidden = (gz @ cast_weight).to(hidden.dtype) if ctx.needs_input_grad[0] else None  # [m, H]
        grad_weight = (gz.t() @ h).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None  # [V, H]
        grad_bias = None
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_z.sum(0).to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def _project(hidden: torch.Tensor, cast_weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """[m, H] -> [m, V] logits in float32 (float64 for a float64 head), the product in cast_weight's
    dtype (autocast off: the operands are already in the dtype it would pick)."""
    with torch.autocast(hidden.device.type, enabled=False):
        b = None if bias is None else bias.to(cast_weight.dtype)
        z = F.linear(hidden.to(cast_weight.dtype), cast_weight, b)
        return z.to(torch.promote_types(z.dtype, torch.float32))


def chunk_scores(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    cast_weight: torch.Tensor,
    tokens: torch.Tensor,
    inv_temp: float,
    certainty_inv_temp: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log p(token), self-certainty, entropy), each [m], for hidden [m, H] and tokens [m]: float32
    (float64 for a float64 head: the float64 tests check the backward to 1e-10).

    `weight` [V, H] is the head's parameter (its gradient flows there); `cast_weight` is
    `compute_weight(weight)`, cast once per pass. Log-probs use logits * inv_temp; certainty and entropy
    (never differentiable) use logits * certainty_inv_temp, or are zeros when it is None.
    """
    return _TokenLogprob.apply(hidden, weight, bias, cast_weight, tokens, inv_temp, certainty_inv_temp)
