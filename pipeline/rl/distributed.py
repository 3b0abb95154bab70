"""This process's place in a training run: alone, or one of several started by torchrun (CPU, gloo) or
`accelerate launch` (GPU, nccl), training with DDP.

The collective work is accelerate's (`Accelerator.prepare/backward/no_sync/gather/reduce`); this
module only decides what is sharded and what is reduced:
- a step's prompts are split into contiguous shards, one per process; the G completions of a prompt
  stay on its process, so group normalisation needs no communication;
- loss weights use the whole step's token/sequence counts, and each process backpropagates
  world_size x its share, because DDP averages gradients over processes;
- per-sequence statistics are gathered in rank order, which is the global prompt order, so the logged
  metrics are those of the whole batch.
A run of one process never imports accelerate and makes no collective call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from pipeline.config import ConfigError, TrainConfig, TrainerConfig

T = TypeVar("T")


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


# accelerate distributed types this trainer runs: DDP on CPU (gloo) or GPU (nccl). DeepSpeed and
# FSDP shard the weights or the optimizer state: their checkpoints (sharded optimizer state, gathered
# weights) and HF rollouts from sharded weights are not written yet, so they are refused up front
# rather than producing a checkpoint that cannot be resumed.
SUPPORTED_STRATEGIES = ("NO", "MULTI_CPU", "MULTI_GPU")


def _check_supported(kind: str, where: str) -> None:
    if kind not in SUPPORTED_STRATEGIES:
        raise ConfigError(
            f"{where}: distributed_type {kind} is not supported by the trainer yet (sharded "
            f"checkpoints and rollouts from sharded weights are missing); supported: "
            f"{list(SUPPORTED_STRATEGIES)}, e.g. conf/accelerate/ddp.yaml (docs/gpu.md)"
        )


def check_strategy(accelerate_config: Path) -> None:
    """Reject an accelerate config whose distributed_type the trainer does not run (names the file)."""
    import yaml

    try:
        tree = yaml.safe_load(accelerate_config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"trainer.accelerate_config: cannot read {accelerate_config} ({e})") from e
    _check_supported(str(tree.get("distributed_type", "NO")), str(accelerate_config))


def check_accelerate_config(trainer: TrainerConfig) -> None:
    """A GPU run on several processes needs an existing accelerate config of a supported strategy."""
    if trainer.processes <= 1 or trainer.device == "cpu":
        return
    if trainer.accelerate_config is None or not Path(trainer.accelerate_config).is_file():
        raise ConfigError(
            f"trainer.accelerate_config: {trainer.accelerate_config!r} is not a file; a GPU run on "
            "several processes needs one, e.g. conf/accelerate/ddp.yaml (see docs/gpu.md)"
        )
    check_strategy(Path(trainer.accelerate_config))


class Distributed:
    """One process (accelerator None) or a process group driven by an accelerate `Accelerator`."""

    def __init__(self, accelerator: Any | None = None) -> None:
        self.accelerator = accelerator

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Distributed:
        world = launched_world_size()
        if world == 1:
            return cls(None)
        check_shardable(cfg.algorithm.prompts_per_step, world)
        from accelerate import Accelerator  # lazy: heavy, and only multi-process runs need it

        accelerator = Accelerator(cpu=cfg.trainer.device == "cpu")
        _check_supported(accelerator.distributed_type.value, "the launched accelerate environment")
        return cls(accelerator)

    # ------------------------------------------------------------------ who am I
    @property
    def world_size(self) -> int:
        return 1 if self.accelerator is None else self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return 0 if self.accelerator is None else self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device | None:
        """The launcher's device for this process (None alone: the config's device is used)."""
        return None if self.accelerator is None else self.accelerator.device

    # ------------------------------------------------------------------ data
    def shard(self, items: list[T]) -> tuple[list[T], int]:
        """This process's contiguous share of `items` and the global index of its first item."""
        if len(items) % self.world_size:
            raise ValueError(f"{len(items)} items cannot be split evenly over {self.world_size} processes")
        k = len(items) // self.world_size
        return items[self.rank * k : (self.rank + 1) * k], self.rank * k

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over processes."""
        if self.accelerator is None:
            return t
        return self.accelerator.reduce(t.to(self.accelerator.device), reduction="sum").cpu()

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenation over processes along dim 0, in rank order (same shape on every process)."""
        if self.accelerator is None:
            return t
        return self.accelerator.gather(t.contiguous().to(self.accelerator.device)).cpu()

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ training
    def prepare(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
        """Wrap the scored module (DDP) and its optimizer as accelerate does."""
        if self.accelerator is None:
            return module, optimizer
        return self.accelerator.prepare(module, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate this process's share of the batch loss.

        Scaled by world_size because DDP averages gradients over processes, and by accelerate's
        accumulation count because `backward` divides by it (accumulation here is ours: no_sync, one
        optimizer step): the shares sum to the full-batch loss, so the gradient is the one-process one.
        """
        if self.accelerator is None:
            loss.backward()
            return
        self.accelerator.backward(loss * self.world_size * self.accelerator.gradient_accumulation_steps)

    def accumulating(self, module: Any, last: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on all but the last micro-batch of an optimizer step."""
        if self.accelerator is None or last:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(module)

    def clip_grad_norm(self, params: list[torch.nn.Parameter], max_norm: float) -> float:
        if self.accelerator is None:
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        return float(self.accelerator.clip_grad_norm_(params, max_norm))

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """The main process runs the body (e.g. writes a file) before the others pass."""
        if self.accelerator is None:
            yield
            return
        with self.accelerator.main_process_first():
            yield
