"""DeepSpeed ZeRO for the trainer: the engine settings an accelerate config asks for, and whole views of
what ZeRO shards (weights under ZeRO-3, optimizer state under ZeRO-1/2/3).

Checkpoints hold the whole weights and the whole optimizer state in torch's per-parameter AdamW
format, whatever the strategy, so a run resumes on any process count and any strategy (one process,
DDP, ZeRO-2, ZeRO-3). DeepSpeed's tensor-fragment API (`deepspeed.utils.safe_*_full_*`) maps each
parameter to its fragments of ZeRO's flat fp32 partitions; every call is a collective, so every
process walks the parameters in the same order.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from pipeline.config import ConfigError

# AdamW's per-parameter state tensors (the trainer's only optimizer).
ADAM_KEYS = ("exp_avg", "exp_avg_sq")


def deepspeed_settings(section: dict[str, Any], where: Path) -> dict[str, Any]:
    """A DeepSpeed config from an accelerate config's `deepspeed_config` section: its
    `deepspeed_config_file` (a DeepSpeed JSON, for any engine setting) or its zero_stage and offload
    fields. The trainer owns accumulation, clipping and precision (`deepspeed_plugin`)."""
    if section.get("deepspeed_config_file"):
        path = Path(section["deepspeed_config_file"])
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{where}: deepspeed_config_file {path} cannot be read ({e})") from e
        where = path
    else:
        config = {
            "zero_optimization": {
                "stage": section.get("zero_stage"),
                "offload_optimizer": {"device": section.get("offload_optimizer_device", "none")},
                "offload_param": {"device": section.get("offload_param_device", "none")},
            }
        }
    stage = (config.get("zero_optimization") or {}).get("stage")
    if stage not in (1, 2, 3):
        raise ConfigError(f"{where}: the ZeRO stage (zero_stage) must be 1, 2 or 3, got {stage!r}")
    for key in ("bf16", "fp16"):
        if (config.get(key) or {}).get("enabled") in (True, "true"):
            raise ConfigError(
                f"{where}: {key}.enabled: the engine runs fp32 master weights; precision is "
                "trainer.mixed_precision (bf16 autocast), so leave DeepSpeed's own off"
            )
    return config


def deepspeed_plugin(settings: dict[str, Any], max_grad_norm: float) -> Any:
    """accelerate's DeepSpeed plugin for `settings`, with what the trainer owns filled in: one
    optimizer step per trainer step (accumulation boundaries are set explicitly), its clip norm, and
    whole weights gathered for the final model."""
    from accelerate.utils import DeepSpeedPlugin

    config = copy.deepcopy(settings)
    config["gradient_accumulation_steps"] = 1
    config["gradient_clipping"] = max_grad_norm if max_grad_norm > 0 else 0.0
    # Unused (the trainer feeds the engine itself) but DeepSpeed checks the batch arithmetic.
    config["train_micro_batch_size_per_gpu"] = 1
    config.pop("train_batch_size", None)
    config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    # Models load whole and `prepare` partitions them (ZeRO-3 init inside from_pretrained is off).
    return DeepSpeedPlugin(hf_ds_config=config, zero3_init_flag=False)


def _inner_optimizer(engine: Any) -> torch.optim.Optimizer:
    """The torch optimizer ZeRO steps over its flat fp32 partitions."""
    return engine.optimizer.optimizer


def whole_optimizer_state(engine: Any, params: list[torch.nn.Parameter], keep: bool) -> dict[str, Any]:
    """The engine's optimizer state as `torch.optim.AdamW(params).state_dict()` would give it, in CPU
    memory where `keep` (the main process; a collective: every process calls it, the others drop each
    gathered tensor at once, so host memory holds one copy, not one per process)."""
    from deepspeed.utils import safe_get_full_optimizer_state

    inner = _inner_optimizer(engine)
    steps = [s["step"] for s in inner.state.values() if "step" in s]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for i, p in enumerate(params if steps else []):  # no state before the first step, as in torch
        state[i] = {"step": torch.as_tensor(steps[0]).detach().clone().float().cpu()}
        for k in ADAM_KEYS:
            whole = safe_get_full_optimizer_state(p, k)
            if keep:
                state[i][k] = whole.detach().float().cpu().clone()
    (group,) = inner.param_groups  # the trainer builds one group over all trainable parameters
    hyper = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
    return {"state": state, "param_groups": [{**hyper, "params": list(range(len(params)))}]}


def load_whole_optimizer_state(engine: Any, params: list[torch.nn.Parameter], saved: dict[str, Any]) -> None:
    """Scatter a torch-format AdamW state (any process count, any strategy) into ZeRO's partitions."""
    from deepspeed.utils import safe_set_full_optimizer_state

    if len(saved["param_groups"]) != 1 or len(saved["param_groups"][0]["params"]) != len(params):
        raise ValueError("the checkpoint's optimizer state does not cover this model's trainable parameters")
    inner = _inner_optimizer(engine)
    _create_states(engine, inner)
    for i, p in enumerate(params):
        entry = saved["state"].get(i)
        if entry is None:
            raise ValueError(f"the checkpoint's optimizer state has no entry for parameter {i}")
        for k in ADAM_KEYS:
            safe_set_full_optimizer_state(p, entry[k].to(p.device), k)
    step = next(iter(saved["state"].values()))["step"] if saved["state"] else None
    for s in inner.state.values():
        if step is not None and "step" in s:
            s["step"] = step.clone().to(s["step"].device) if torch.is_tensor(s["step"]) else float(step)
    hyper = {k: v for k, v in saved["param_groups"][0].items() if k != "params"}
    for group in inner.param_groups:
        group.update(copy.deepcopy(hyper))


def _create_states(engine: Any, inner: torch.optim.Optimizer) -> None:
    """AdamW state for ZeRO's flat partitions before any step (torch creates it lazily in `step`),
    linked to the parameters' fragments, so a saved state can be scattered into it."""
    zero_optimizer = engine.optimizer
    # ZeRO-3 puts its flat partitions into the param groups only around `step`.
    flats = getattr(zero_optimizer, "fp32_partitioned_groups_flat", None)
    if flats is None:
        flats = [flat for group in inner.param_groups for flat in group["params"]]
    for flat in flats:
        st = inner.state[flat]
        if not st:
            st["step"] = torch.tensor(0.0)
            st["exp_avg"] = torch.zeros_like(flat, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(flat, memory_format=torch.preserve_format)
    if hasattr(zero_optimizer, "_lazy_init_hp_params_optimizer_state"):  # ZeRO-1/2 link lazily too
        zero_optimizer._hp_optimizer_states_linked = False
        zero_optimizer._lazy_init_hp_params_optimizer_state()


def load_whole_weights(named: list[tuple[str, torch.nn.Parameter]], weights: dict[str, torch.Tensor]) -> None:
    """Load whole weights into ZeRO: the module's parameters (partitioned under ZeRO-3) and ZeRO's
    fp32 master copies, which the optimizer steps and writes back over the module's."""
    import deepspeed
    from deepspeed.utils import safe_set_full_fp32_param

    for name, p in named:
        if name not in weights:
            raise KeyError(f"checkpoint weights have no {name!r}")
        value = weights[name].to(p.device, p.dtype)
        with deepspeed.zero.GatheredParameters([p], modifier_rank=0):  # a no-op unless ZeRO-3
            p.data.copy_(value)
        safe_set_full_fp32_param(p, value.float())
