"""Collate rollout groups into the [N, P + C] tensors one scoring pass reads."""

from __future__ import annotations

import torch

from pipeline.types import RolloutGroup, ScoredBatch, TokenScores


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


def recorded_scores(batch: ScoredBatch) -> TokenScores | None:
    """The policy's [N, C] self-certainty and entropy recorded during rollout (no log-probs), or None
    unless every group carries them."""
    if any(g.token_scores is None for g in batch.groups):
        return None
    n, c = batch.completion_mask.shape
    certainty, entropy = torch.zeros(n, c), torch.zeros(n, c)
    g_size = batch.group_size
    for gi, g in enumerate(batch.groups):
        assert g.token_scores is not None
        sc, ent = g.token_scores
        width = min(c, sc.shape[1])
        rows = slice(gi * g_size, (gi + 1) * g_size)
        certainty[rows, :width] = sc[:, :width]
        entropy[rows, :width] = ent[:, :width]
    mask = batch.completion_mask
    return TokenScores(logprobs=None, self_certainty=certainty * mask, entropy=entropy * mask)


def micro_batches(
    prompt_lengths: torch.Tensor,
    completion_lengths: torch.Tensor,
    prompt_index: torch.Tensor,
    max_rows: int,
    max_tokens: int = 0,
) -> list[slice]:
    """Consecutive row ranges for the training pass: at most `max_rows` rows each and, with
    `max_tokens` > 0, at most that many padded tokens, i.e. what the pass computes: each distinct prompt
    once at the longest prompt's length plus every row at the longest completion's length. A single
    row over the budget is a micro-batch of its own.

    prompt_lengths / completion_lengths / prompt_index: [N] real prompt tokens, completion tokens and
    the row's prompt (rows of one prompt are contiguous: a group).
    """
    n = int(completion_lengths.shape[0])
    max_rows = max(1, max_rows)
    out: list[slice] = []
    start = 0
    while start < n:
        end = start + 1
        while end < n and end - start < max_rows:
            if max_tokens > 0:
                rows = slice(start, end + 1)
                distinct = int(prompt_index[rows].unique().numel())
                cost = distinct * int(prompt_lengths[rows].max()) + (end + 1 - start) * int(
                    completion_lengths[rows].max()
                )
                if cost > max_tokens:
                    break
            end += 1
        out.append(slice(start, end))
        start = end
    return out


def whole_groups(slices: list[slice], group_size: int) -> bool:
    """True when every micro-batch holds whole groups (rows of one prompt are contiguous)."""
    return all(s.start % group_size == 0 and s.stop % group_size == 0 for s in slices)


def split_to(slices: list[slice], count: int) -> list[slice]:
    """Halve the largest micro-batch until there are `count` (processes of a sharded run must make the
    same number of backward calls: DeepSpeed and FSDP communicate in every one)."""
    out = list(slices)
    while len(out) < count:
        i = max(range(len(out)), key=lambda k: out[k].stop - out[k].start)
        s = out[i]
        if s.stop - s.start < 2:
            raise ValueError(f"cannot split {len(slices)} micro-batches of single rows into {count}")
        mid = s.start + (s.stop - s.start) // 2
        out[i : i + 1] = [slice(s.start, mid), slice(mid, s.stop)]
    return out
