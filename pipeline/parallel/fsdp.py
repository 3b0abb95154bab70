"""FSDP2 for the trainer: PyTorch's `fully_shard` on the scoring module, and whole views of what it shards.

The trainer applies `fully_shard` itself rather than through `Accelerator.prepare`: accelerate (1.15)
enables FSDP only on accelerator devices, and the same calls then run on CPU (gloo) in the tests and
on GPUs (nccl). Units: every decoder layer (the model's `_no_split_modules`, or the accelerate config's
`fsdp_transformer_layer_cls_to_wrap`) plus the root, the scoring module, whose forward is the whole
scoring pass; the root's own parameters (embeddings, final norm, output head) are gathered for it.

Checkpoints hold whole weights and the whole AdamW state in torch's per-parameter format
(`torch.distributed.checkpoint.state_dict` gathers them), like every other strategy's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pipeline.config import ConfigError


def fsdp_settings(section: dict[str, Any], where: Path) -> dict[str, Any]:
    """The FSDP2 settings of an accelerate config's `fsdp_config` (only what this trainer runs)."""
    if int(section.get("fsdp_version", 1)) != 2:
        raise ConfigError(f"{where}: fsdp_config.fsdp_version must be 2 (FSDP2); FSDP1 is not supported")
    for key in ("fsdp_offload_params", "fsdp_cpu_ram_efficient_loading"):
        if section.get(key) in (True, "true"):
            raise ConfigError(f"{where}: fsdp_config.{key} is not supported by the trainer; set it to false")
    policy = section.get("fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP")
    if policy != "TRANSFORMER_BASED_WRAP":
        raise ConfigError(
            f"{where}: fsdp_config.fsdp_auto_wrap_policy must be TRANSFORMER_BASED_WRAP, got {policy}"
        )
    layers = section.get("fsdp_transformer_layer_cls_to_wrap")
    return {
        "reshard_after_forward": bool(section.get("fsdp_reshard_after_forward", True)),
        "layer_classes": [c.strip() for c in layers.split(",")] if isinstance(layers, str) else layers,
    }


def shard(
    root: torch.nn.Module, optimizer: torch.optim.Optimizer, settings: dict[str, Any], device: torch.device
) -> list[Any]:
    """`fully_shard` each decoder layer inside `root`, then `root`; returns the units, root last.

    fully_shard replaces the parameters with DTensor ones: `optimizer` (not stepped yet) is pointed at
    them, by name."""
    if optimizer.state:
        raise RuntimeError("FSDP2: shard before the optimizer's first step")
    names = {id(p): n for n, p in root.named_parameters()}
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    declared = next(
        (m._no_split_modules for m in root.modules() if getattr(m, "_no_split_modules", None)), []
    )
    classes = set(settings.get("layer_classes") or declared)
    layers = [m for m in root.modules() if type(m).__name__ in classes]
    if not layers:
        raise ConfigError(f"FSDP2: no decoder layer of the classes {sorted(classes)} to shard")
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for layer in layers:
        fully_shard(layer, mesh=mesh, reshard_after_forward=settings["reshard_after_forward"])
    fully_shard(root, mesh=mesh)
    # FSDP2 makes the first unit to run forward the root; rollouts call the layers first, so the real
    # root is initialised now (torch has no public call for it).
    root._get_fsdp_state()._lazy_init()
    sharded = dict(root.named_parameters())
    for group in optimizer.param_groups:
        group["params"] = [sharded[names[id(p)]] for p in group["params"]]
    return [*layers, root]


@contextlib.contextmanager
def whole(units: list[Any], reshard_after_forward: bool) -> Iterator[None]:
    """Every unit's weights gathered and kept for the body (e.g. HF generate: one gather per rollout,
    not one per decoding step, and no collective inside generate, so processes need no lockstep)."""
    for u in units:
        u.set_reshard_after_forward(False, recurse=False)
    try:
        for u in units:
            u.unshard()
        yield
    finally:
        for u in units:
            u.reshard()
        # Layers free gathered weights after each forward again; the root never did (its backward follows).
        for u in units[:-1]:
            u.set_reshard_after_forward(reshard_after_forward, recurse=False)


def trainable_names(root: torch.nn.Module) -> list[str]:
    """Fully qualified names of the trainable parameters, in the optimizer's order."""
    return [n for n, p in root.named_parameters() if p.requires_grad]


def _options(**kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def whole_state_dict(root: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Whole weights on rank 0 (empty elsewhere); a collective."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(root, options=_options(cpu_offload=True))


def whole_optimizer_state(root: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The whole AdamW state in torch's index format (rank 0; a collective)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    by_name = get_optimizer_state_dict(root, optimizer, options=_options(cpu_offload=True))
    names = trainable_names(root)
    (group,) = by_name["param_groups"] if by_name else [{}]
    hyper = {k: v for k, v in group.items() if k != "params"}
    state = {i: by_name["state"][n] for i, n in enumerate(names) if by_name and n in by_name["state"]}
    return {"state": state, "param_groups": [{**hyper, "params": list(range(len(names)))}]}


def load_whole_optimizer_state(root: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Shard a whole torch-format AdamW state (every process passes all of it)."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    names = trainable_names(root)
    if len(saved["param_groups"]) != 1 or len(saved["param_groups"][0]["params"]) != len(names):
        raise ValueError("the checkpoint's optimizer state does not cover this model's trainable parameters")
    hyper = {k: v for k, v in saved["param_groups"][0].items() if k != "params"}
    by_name = {
        "state": {names[i]: entry for i, entry in saved["state"].items()},
        "param_groups": [{**hyper, "params": names}],
    }
    set_optimizer_state_dict(root, optimizer, optim_state_dict=by_name, options=_options())


def load_whole_weights(
    root: torch.nn.Module, weights: dict[str, torch.Tensor], prefix: str, tied: set[str]
) -> None:
    """Shard whole weights (keys without `prefix`) into `root`; only `tied` keys may be absent."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    result = set_model_state_dict(
        root, {prefix + k: v for k, v in weights.items()}, options=_options(strict=False)
    )
    missing = {k.removeprefix(prefix) for k in result.missing_keys} - tied
    if result.unexpected_keys or missing:
        raise RuntimeError(
            f"weights do not match the model (missing={missing}, unexpected={result.unexpected_keys})"
        )
