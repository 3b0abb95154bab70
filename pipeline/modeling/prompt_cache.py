"""A GRPO group's prompt, run once: rows sharing a prompt get copies of its keys and values.

Every step samples and scores G completions of each prompt. Run row by row, the decoder processes the
prompt G times (MATH prompts of ~100-180 tokens against 128-token completions: over half the tokens).
Run once per distinct prompt, the KV cache it leaves is copied to its rows, and the completions run on
top: the same attention over the same keys, at 1/G of the prompt's cost. Used by the rollout (one
prefill per prompt) and by the scoring and gradient passes.
"""

from __future__ import annotations

import torch
from transformers import Cache
from transformers.cache_utils import DynamicLayer, StaticLayer


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """[N, L] positions counting real tokens only, as `generate` does for left-padded prompts."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def shared_prompts(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose first `prompt_length` columns (ids and mask) are identical: (the first row of each
    distinct prompt [U], the index of each row's prompt among them [N]); prompts numbered in order of
    first appearance."""
    key = torch.cat([input_ids[:, :prompt_length], attention_mask[:, :prompt_length]], dim=1)  # [N, 2P]
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    n = inverse.shape[0]
    first_of = torch.full((int(inverse.max()) + 1,), n, dtype=torch.long)
    first_of.scatter_reduce_(0, inverse, torch.arange(n), reduce="amin")
    # unique sorts its rows; renumber by first appearance
    order = torch.argsort(first_of)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return first_of[order], rank[inverse]


def can_share(cache: Cache) -> bool:
    """Plain full-attention layers only: a sliding-window layer's buffer is not a prompt prefix."""
    return all(type(layer) in (DynamicLayer, StaticLayer) for layer in cache.layers)


def select_rows(cache: Cache, index: torch.Tensor) -> None:
    """Replace every layer's [U, heads, S, d] keys/values by their rows `index` -> [N, heads, S, d].

    index_select is differentiable: in the gradient pass each prompt's keys receive the gradients of
    all its rows.
    """
    for layer in cache.layers:
        if not layer.is_initialized:
            continue
        layer.keys = layer.keys.index_select(0, index.to(layer.keys.device))
        layer.values = layer.values.index_select(0, index.to(layer.values.device))
        if hasattr(layer, "batch_size"):
            layer.batch_size = int(index.numel())
