"""The policy's weights under the names vLLM loads, whatever wraps the model (DDP, DeepSpeed, FSDP,
torch.compile, activation checkpointing): what `VLLMRolloutEngine.sync_weights` copies each step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

# Wrappers that prefix parameter names: removed wherever they occur (FSDP1 and activation
# checkpointing wrap nested modules; torch.compile may wrap a submodule).
_WRAPPER_INFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
# DDP / DeepSpeed engines wrap the whole model as `.module`: only a leading prefix is theirs.
_LEADING_PREFIX = "module."


def vllm_weight_name(name: str) -> str:
    """The Hugging Face name vLLM's `load_weights` expects for a (possibly wrapped) parameter name."""
    for infix in _WRAPPER_INFIXES:
        name = name.replace(infix, "")
    while name.startswith(_LEADING_PREFIX):
        name = name[len(_LEADING_PREFIX) :]
    return name


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model inside DDP / DeepSpeed (`.module`) and torch.compile (`._orig_mod`)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def vllm_named_weights(
    named: Iterable[tuple[str, torch.Tensor]], tie_word_embeddings: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    """(vLLM name, tensor) pairs; a tied `lm_head.weight` is skipped (vLLM ties it to the embeddings).

    Lazy, so a gathered (ZeRO-3) parameter lives only while vLLM copies it.
    """
    seen: set[str] = set()
    for raw, tensor in named:
        name = vllm_weight_name(raw)
        if tie_word_embeddings and name == "lm_head.weight":
            continue
        if name in seen:
            raise ValueError(f"two parameters map to the vLLM weight {name!r} (last: {raw!r})")
        seen.add(name)
        yield name, tensor


def _full_parameters(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Full (unsharded) detached parameters: FSDP2 DTensors are gathered, ZeRO-3 ones too."""
    for name, param in model.named_parameters():
        gathered: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if hasattr(param, "ds_id"):  # a DeepSpeed ZeRO-3 partition: gather it for the copy
            import deepspeed

            gathered = deepspeed.zero.GatheredParameters([param])
        with gathered:
            tensor = param.detach()
            if hasattr(tensor, "full_tensor"):  # FSDP2 DTensor shard
                tensor = tensor.full_tensor()
            yield name, tensor


def policy_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's current weights under the names vLLM loads, whatever wraps the model."""
    config = getattr(unwrap_model(model), "config", None)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    return vllm_named_weights(_full_parameters(model), tied)
