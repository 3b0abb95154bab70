"""The frozen reference model: the base policy that the KL term and offline rewards score against."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel

from pipeline.config import TrainConfig
from pipeline.rewards.registry import needs_reference


def make_reference(
    cfg: TrainConfig, policy: PreTrainedModel, reference: PreTrainedModel | None = None
) -> PreTrainedModel | None:
    """A frozen copy of `policy` (or `reference`), or None when beta = 0 and no reward reads it.

    Call it before any checkpoint is loaded into the policy: it is the base model, also on resume.
    cfg.trainer.mixed_precision must be resolved (no auto)."""
    if cfg.algorithm.beta == 0.0 and not needs_reference(cfg.method.rewards):
        return None
    ref = (reference or copy.deepcopy(policy)).eval().requires_grad_(False)
    if cfg.trainer.mixed_precision == "bf16":
        # Its passes run under bf16 autocast anyway (matmuls cast fp32 weights to bf16): a bf16 copy
        # computes nearly the same (norm weights rounded) in half the memory.
        ref.to(torch.bfloat16)
    if cfg.trainer.offload_reference:
        ref.to("cpu")  # moved to the policy's device only for its scoring pass (`on_device`)
    return ref


@contextlib.contextmanager
def on_device(reference: PreTrainedModel, device: torch.device, offload: bool) -> Iterator[PreTrainedModel]:
    """The reference on `device` for a pass; with `offload`, back to CPU memory afterwards."""
    if offload:
        reference.to(device)
    try:
        yield reference
    finally:
        if offload:
            reference.to("cpu")
