"""Decode time per step of HF `generate`, the prefill subtracted (shared by the decode benches)."""

from __future__ import annotations

import time
from typing import Any

import torch


@torch.no_grad()
def decode_s_per_step(model: Any, ids: torch.Tensor, mask: torch.Tensor, steps: int, **kw: Any) -> float:
    """(generate(1 + steps) - generate(1)) / steps, greedy; `kw` goes to generate (cache, pad id)."""
    kw = {"do_sample": False, "eos_token_id": None, **kw}
    t0 = time.perf_counter()
    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, **kw)
    t1 = time.perf_counter()
    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1 + steps, **kw)
    t2 = time.perf_counter()
    return ((t2 - t1) - (t1 - t0)) / steps
