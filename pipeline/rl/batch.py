"""Collate rollout groups into the [N, P + C] tensors one scoring pass reads."""

from __future__ import annotations

import torch

from pipeline.types import RolloutGroup, ScoredBatch


def collate_groups(groups: list[RolloutGroup], pad_id: int) -> ScoredBatch:
    """Left-pad prompts to P and right-pad completions to C, so completion t sits at column P + t.

    The attention mask covers real prompt tokens and masked-in completion tokens; positions are
    derived from it (see scoring.position_ids_from_mask), matching what `generate` used.
    """
    if not groups:
        raise ValueError("no rollout groups to collate")
    sizes = {g.group_size for g in groups}
    if len(sizes) != 1:
        raise ValueError(f"all groups must have the same size, got {sorted(sizes)}")
    g_size = sizes.pop()
    n = len(groups) * g_size
    p_len = max(int(g.prompt_ids.numel()) for g in groups)
    c_len = max(int(g.completion_mask.sum(-1).max()) for g in groups)
    c_len = max(c_len, 1)
    input_ids = torch.full((n, p_len + c_len), pad_id, dtype=torch.long)
    attention = torch.zeros((n, p_len + c_len), dtype=torch.long)
    cmask = torch.zeros((n, c_len), dtype=torch.float32)
    for gi, g in enumerate(groups):
        plen = int(g.prompt_ids.numel())
        rows = slice(gi * g_size, (gi + 1) * g_size)
        input_ids[rows, p_len - plen : p_len] = g.prompt_ids
        attention[rows, p_len - plen : p_len] = 1
        width = min(c_len, g.completion_ids.shape[1])
        input_ids[rows, p_len : p_len + width] = g.completion_ids[:, :width]
        m = g.completion_mask[:, :width].float()
        cmask[rows, :width] = m
        attention[rows, p_len : p_len + width] = m.long()
    return ScoredBatch(
        groups=groups,
        input_ids=input_ids,
        attention_mask=attention,
        completion_ids=input_ids[:, p_len:],
        completion_mask=cmask,
        prompt_length=p_len,
    )
