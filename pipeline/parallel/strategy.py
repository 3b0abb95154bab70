"""A run's process layout as its config and launcher give it, readable without torch: the launcher's
environment (world size, rank), whether a step's prompts split evenly over the processes, and the
accelerate config file (its distributed_type checked, DeepSpeed / FSDP settings read).

Every stage validates params.yaml with these at start-up, so they import no torch: a stage that never
trains (prepare_data, report) does not pay torch's import for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, TrainerConfig


def launched_world_size() -> int:
    """Processes in this run according to the launcher's environment (1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a launched run, or a process that was not launched."""
    return int(os.environ.get("RANK", "0")) == 0


def check_shardable(prompts_per_step: int, processes: int) -> None:
    if processes < 1:
        raise ConfigError(f"trainer.processes: must be >= 1, got {processes}")
    if prompts_per_step % processes:
        raise ConfigError(
            f"algorithm.prompts_per_step={prompts_per_step} is not divisible by "
            f"trainer.processes={processes}: every process must hold the same number of prompts"
        )


# accelerate distributed types this trainer runs, on CPU (gloo) or GPU (nccl): DDP, DeepSpeed ZeRO
# stages 1-3 (its engine, parallel/zero.py) and FSDP2 (PyTorch's fully_shard, parallel/fsdp.py).
SUPPORTED_STRATEGIES = ("NO", "MULTI_CPU", "MULTI_GPU", "DEEPSPEED", "FSDP")


def check_supported(kind: str, where: str) -> None:
    if kind not in SUPPORTED_STRATEGIES:
        raise ConfigError(
            f"{where}: distributed_type {kind} is not supported by the trainer; "
            f"supported: {list(SUPPORTED_STRATEGIES)}, e.g. conf/accelerate/ddp.yaml or "
            "conf/accelerate/deepspeed_zero2.yaml"
        )


def read_strategy(accelerate_config: Path) -> dict[str, Any]:
    """The accelerate config file as a dict, its distributed_type checked (errors name the file);
    a DeepSpeed config also gets `deepspeed` (zero.deepspeed_settings), an FSDP one `fsdp`."""
    import yaml

    from pipeline.parallel import fsdp, zero  # lazy: torch, which reading a config file does not need

    try:
        tree = yaml.safe_load(accelerate_config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"trainer.accelerate_config: cannot read {accelerate_config} ({e})") from e
    if not isinstance(tree, dict):
        raise ConfigError(f"trainer.accelerate_config: {accelerate_config} is not a YAML mapping")
    check_supported(str(tree.get("distributed_type", "NO")), str(accelerate_config))
    if tree.get("distributed_type") == "DEEPSPEED":
        tree["deepspeed"] = zero.deepspeed_settings(tree.get("deepspeed_config") or {}, accelerate_config)
    if tree.get("distributed_type") == "FSDP":
        tree["fsdp"] = fsdp.fsdp_settings(tree.get("fsdp_config") or {}, accelerate_config)
    return tree


def check_strategy(accelerate_config: Path) -> None:
    """Reject an accelerate config whose distributed_type the trainer does not run (names the file)."""
    read_strategy(accelerate_config)


def check_accelerate_config(trainer: TrainerConfig) -> None:
    """A GPU run on several processes needs an existing accelerate config of a supported strategy; a
    CPU run may name one (e.g. DeepSpeed on gloo) and then it must exist too."""
    if trainer.processes <= 1:
        return
    if trainer.accelerate_config is None and trainer.device == "cpu":
        return  # DDP on gloo
    if trainer.accelerate_config is None or not Path(trainer.accelerate_config).is_file():
        raise ConfigError(
            f"trainer.accelerate_config: {trainer.accelerate_config!r} is not a file; a GPU run on "
            "several processes needs one, e.g. conf/accelerate/ddp.yaml (see docs/gpu.md)"
        )
    check_strategy(Path(trainer.accelerate_config))
