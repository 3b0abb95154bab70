"""The RolloutEngine contract every engine (HF, vLLM) fulfils; the trainer sees only this."""

from __future__ import annotations

from typing import Protocol

import torch

from pipeline.config import SamplingConfig
from pipeline.types import Prompt, RolloutGroup


class RolloutEngine(Protocol):
    # Token ids that end a completion (the model's EOS ids) and the id completions are padded with.
    eos_ids: list[int]
    pad_id: int

    def generate(
        self, prompts: list[Prompt], n: int, sampling: SamplingConfig, seed: int, first_prompt: int = 0
    ) -> list[RolloutGroup]:
        """n sampled completions for each prompt, in prompt order. Completion j of prompts[i] depends
        only on (seed, first_prompt + i, j): `first_prompt` is the global index of prompts[0] when a
        step's prompts are sharded across processes."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the engine sample from `model`'s current weights (after an optimizer step)."""
        ...


def completion_mask(completion_ids: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    """[N, C] long mask: 1 up to and including the first EOS, 0 after it; all 1 when no EOS.

    Built from the first EOS, not from `!= pad`: the pad token is an EOS for SmolLM2/Qwen.
    """
    is_eos = torch.isin(completion_ids, torch.tensor(eos_ids, device=completion_ids.device))
    # number of EOS strictly before each position: 0 means "at or before the first EOS"
    eos_before = torch.cumsum(is_eos.long(), dim=-1) - is_eos.long()
    return (eos_before == 0).long()
