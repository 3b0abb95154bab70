"""Compute precision: bf16 autocast where the hardware has bf16 matrix units, full precision elsewhere.

`trainer.mixed_precision` is `auto`, `bf16` or `no`. `auto` is resolved once per run, at run time, from
the device the run uses: a CUDA GPU with bf16 support, or a CPU with AMX-BF16 or AVX512-BF16 (oneDNN
runs autocast's bf16 matmuls on those units, 3-7x faster than fp32 on this project's CPUs; see
bench/roofline.py), gets `bf16`; anything else `no`. The resolved value is what runs, what is logged as
a parameter and what the stage summaries record: a run's numbers never depend on an unrecorded probe.

bf16 here is mixed precision, never bf16 weights: parameters and optimizer state stay in model.dtype
(fp32), autocast casts each matmul's inputs to bf16 and accumulates in fp32. What changes numerically:
matmul outputs (the logits included) are rounded to bf16 (8 mantissa bits), so a token's log-prob
moves by up to about |logit| x 2^-9; self-certainty, entropy, rewards, advantages and the loss are
still computed in float32/float64 from those logits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from pathlib import Path
from typing import Literal

import torch

from pipeline.config import TrainConfig

Precision = Literal["no", "bf16"]
# /proc/cpuinfo flags of the units that run bf16 matmuls natively (Intel AMX, AVX512-BF16 on Intel
# Cooper Lake+ and AMD Zen 4+). Without them oneDNN emulates bf16 and autocast is slower than fp32.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of a /proc/cpuinfo text (the first processor's `flags` line)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


@functools.cache
def cpu_has_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """True when this CPU has native bf16 matmul units and torch's oneDNN can use them."""
    path = Path(cpuinfo_path)
    if not path.exists():  # not Linux: no flags to read, stay in full precision
        return False
    if not cpu_flags(path.read_text(errors="replace")) & BF16_CPU_FLAGS:
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_mixed_precision(setting: str, device: str) -> Precision:
    """What `trainer.mixed_precision` means on `device`: `auto` becomes `bf16` or `no`."""
    if setting in ("no", "bf16"):
        return setting  # type: ignore[return-value]
    if setting != "auto":
        raise ValueError(f"trainer.mixed_precision: {setting!r} is not one of auto, bf16, no")
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if kind == "cpu":
        return "bf16" if cpu_has_bf16() else "no"
    return "no"


def generation_precision(precision: str, device: str) -> Precision:
    """The precision the HF engine's `generate` runs in on `device` for `trainer.mixed_precision`.

    On CPU it is always the weights' precision: decode there is bound by per-step overhead, not by
    the matrix units (SmolLM2, 32 rows, 2 threads: fp32 101 tok/s, bf16 weights 107), and under
    autocast the preallocated KV cache (weights' dtype) cannot be used, which made bf16 rollouts
    0.86x of fp32 (bench/rollout_throughput.py). Elsewhere it is the training precision.
    """
    resolved = resolve_mixed_precision(precision, device)
    return "no" if torch.device(device).type == "cpu" else resolved


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device_type` for a resolved precision `bf16`; nothing for `no`."""
    if precision == "no":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"autocast needs a resolved precision (no or bf16), got {precision!r}")
    return torch.autocast(device_type, dtype=torch.bfloat16)


def with_resolved_precision(cfg: TrainConfig, device: str | torch.device) -> TrainConfig:
    """A copy of `cfg` whose trainer.mixed_precision is what runs on `device` (auto resolved)."""
    resolved = resolve_mixed_precision(cfg.trainer.mixed_precision, str(device))
    if resolved == cfg.trainer.mixed_precision:
        return cfg
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, mixed_precision=resolved))
