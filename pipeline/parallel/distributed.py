"""This process's place in a training run: alone, or one of several started by torchrun (CPU, gloo) or
`accelerate launch` (GPU, nccl), training with DDP or DeepSpeed ZeRO-2/3.

The collective work is accelerate's and DeepSpeed's (`Accelerator.prepare/backward/no_sync/gather/
reduce`, the DeepSpeed engine's backward/step); this module only decides what is sharded and reduced:
- a step's prompts are split into contiguous shards, one per process; the G completions of a prompt
  stay on its process, so group normalisation needs no communication;
- loss weights use the whole step's token/sequence counts, and each process backpropagates
  world_size x its share, because DDP and ZeRO average gradients over processes;
- per-sequence statistics are gathered in rank order, which is the global prompt order, so the logged
  metrics are those of the whole batch.
A run of one process never imports accelerate and makes no collective call.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from pipeline.config import TrainConfig
from pipeline.modeling.models import tied_keys
from pipeline.parallel import fsdp, zero
from pipeline.parallel.strategy import check_shardable, check_supported, launched_world_size, read_strategy

T = TypeVar("T")


class Distributed:
    """One process (accelerator None) or a process group driven by an accelerate `Accelerator`."""

    def __init__(self, accelerator: Any | None = None, fsdp_settings: dict[str, Any] | None = None) -> None:
        self.accelerator = accelerator
        # FSDP2: the settings, then (after `prepare`) the sharded units, root last.
        self.fsdp = fsdp_settings
        self._units: list[Any] = []

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Distributed:
        world = launched_world_size()
        if world == 1:
            return cls(None)
        check_shardable(cfg.algorithm.prompts_per_step, world)
        from accelerate import Accelerator  # lazy: heavy, and only multi-process runs need it
        from accelerate.utils import InitProcessGroupKwargs

        path = cfg.trainer.accelerate_config
        tree = read_strategy(Path(path)) if path is not None else {}
        cpu = cfg.trainer.device == "cpu"
        if tree.get("distributed_type") == "DEEPSPEED":
            # DeepSpeed brings up the process group itself; on CPU it must be told gloo, or accelerate
            # finds no backend and counts one process.
            accelerator = Accelerator(
                deepspeed_plugin=zero.deepspeed_plugin(tree["deepspeed"], cfg.algorithm.max_grad_norm),
                mixed_precision="no",
                kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")] if cpu else None,
            )
        else:
            accelerator = Accelerator(cpu=cpu, mixed_precision="no")
        check_supported(accelerator.distributed_type.value, "the launched accelerate environment")
        if tree.get("distributed_type") == "DEEPSPEED":
            # accelerate registers its DeepSpeed config with transformers, whose from_pretrained then
            # builds ZeRO-3 models partitioned (collectives inside a main-process-first load: a
            # deadlock). Models load whole; `prepare` partitions them.
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()
        if accelerator.num_processes != world:
            raise RuntimeError(f"accelerate sees {accelerator.num_processes} processes, the launcher {world}")
        # FSDP: accelerate supplies the process group and collectives; `prepare` shards (fsdp.py).
        return cls(accelerator, tree.get("fsdp"))

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
    def prepare(
        self,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        external: list[torch.nn.Parameter] | None = None,
    ) -> tuple[Any, Any]:
        """Wrap the scored module (DDP or a DeepSpeed engine) and its optimizer as accelerate does.

        `external`: parameters the module's forward reads directly rather than through their owner's
        forward (the output embedding in the chunked scoring pass); ZeRO-3 gathers them for the whole
        forward and backward of `module` instead of for one call of their owner.
        """
        if self.accelerator is None:
            return module, optimizer
        if self.fsdp is not None:
            self._units = fsdp.shard(module, optimizer, self.fsdp, self.accelerator.device)
            return module, optimizer
        if self.zero_stage == 3:
            import deepspeed

            for p in external or []:
                deepspeed.zero.register_external_parameter(module, p)
        return self.accelerator.prepare(module, optimizer)

    @property
    def strategy(self) -> str:
        """single, ddp, zero1/zero2/zero3 or fsdp2 (recorded with the run's results)."""
        if self.accelerator is None:
            return "single"
        if self.fsdp is not None:
            return "fsdp2"
        return f"zero{self.zero_stage}" if self.zero_stage else "ddp"

    @property
    def zero_stage(self) -> int:
        """DeepSpeed ZeRO stage of this run (0: no DeepSpeed)."""
        if self.accelerator is None or self.accelerator.distributed_type.value != "DEEPSPEED":
            return 0
        return int(self.accelerator.state.deepspeed_plugin.zero_stage)

    def _engine(self) -> Any:
        return self.accelerator.deepspeed_engine_wrapped.engine

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        """Backpropagate this process's share of the batch loss (`last`: the step's last micro-batch).

        Scaled by world_size because DDP and ZeRO average gradients over processes, and by
        accelerate's accumulation count because its `backward` divides by it (accumulation here is
        ours: one optimizer step per trainer step): the shares sum to the full-batch loss, so the
        gradient is the one-process one.
        """
        if self.accelerator is None:
            loss.backward()
        elif self.fsdp is not None:
            (loss * self.world_size).backward()  # FSDP2 reduce-scatters the mean over processes
        elif self.zero_stage:
            engine = self._engine()
            # The engine reduces (ZeRO-2/3: reduce-scatters) at the boundary it is told, not by count.
            engine.set_gradient_accumulation_boundary(is_boundary=last)
            engine.backward(loss * self.world_size)
        else:
            self.accelerator.backward(loss * self.world_size * self.accelerator.gradient_accumulation_steps)

    def accumulating(self, module: Any, last: bool) -> contextlib.AbstractContextManager:
        """DDP: skip the gradient all-reduce on all but the last micro-batch of an optimizer step."""
        if self.accelerator is None or last or self.zero_stage or self.fsdp is not None:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(module)

    def optimizer_step(self, optimizer: Any, max_norm: float) -> float:
        """Clip to max_norm, step, zero the gradients; returns the pre-clip global gradient norm.

        A non-finite norm (a NaN/inf loss or gradient on any process: the norm is global) skips the
        step: the gradients are dropped and the weights and optimizer state stay as they were.

        Clips the optimizer's own parameters: FSDP2 re-registers the root's parameters around its
        forward and backward, so a list taken from the module before backward may be stale. Under
        DeepSpeed the engine clips (to the norm it was configured with: the same max_norm) and steps
        its sharded optimizer; its fp32/bf16 ZeRO optimizer itself skips a step whose gradient norm
        is not finite (and reports the norm as inf).
        """
        if self.zero_stage:
            engine = self._engine()
            engine.step()
            return float(engine.get_global_grad_norm())
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if self.accelerator is None or self.fsdp is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)  # FSDP2: a DTensor, the global norm
            norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        else:
            norm = float(self.accelerator.clip_grad_norm_(params, max_norm))
        if math.isfinite(norm):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    # ------------------------------------------------------------------ weights
    def full_state_dict(self, module: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """Under ZeRO-3 and FSDP2, the gathered state dict of the prepared module on the main process
        (a collective: every process calls it). None where this process's weights are whole (one
        process, DDP, ZeRO-1/2): the module's own state is the one to save."""
        if self.fsdp is not None:
            return fsdp.whole_state_dict(module)
        if self.zero_stage != 3:
            return None
        return self.accelerator.get_state_dict(module)

    def rollout_weights(self) -> contextlib.AbstractContextManager:
        """FSDP2: every unit gathered for the rollouts (HF generate calls the layers directly)."""
        if self.fsdp is None or not self._units:
            return contextlib.nullcontext()
        return fsdp.whole(self._units, self.fsdp["reshard_after_forward"])

    def optimizer_state(self, optimizer: Any, params: list[torch.nn.Parameter]) -> dict[str, Any]:
        """The whole optimizer state in torch's AdamW format, complete on the main process (a collective
        under DeepSpeed and FSDP2)."""
        if self.fsdp is not None:
            return fsdp.whole_optimizer_state(self._units[-1], optimizer)
        if not self.zero_stage:
            return optimizer.state_dict()
        return zero.whole_optimizer_state(self._engine(), params, keep=self.is_main)

    def load_optimizer_state(self, optimizer: Any, params: list[torch.nn.Parameter], state: dict) -> None:
        """Restore a whole torch-format optimizer state, written on any process count or strategy."""
        if self.fsdp is not None:
            fsdp.load_whole_optimizer_state(self._units[-1], optimizer, state)
        elif not self.zero_stage:
            optimizer.load_state_dict(state)
        else:
            zero.load_whole_optimizer_state(self._engine(), params, state)

    def load_weights(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> bool:
        """ZeRO / FSDP2: load whole weights into the sharded module (and ZeRO's master copies);
        returns False when the caller's plain `load_state_dict` does it (one process, DDP)."""
        if self.fsdp is not None:
            fsdp.load_whole_weights(
                self._units[-1], weights, "model.", tied_keys(model)
            )  # CompletionScorer.model
            return True
        if not self.zero_stage:
            return False
        zero.load_whole_weights(list(model.named_parameters()), weights)
        return True

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """The main process runs the body (e.g. writes a file) before the others pass."""
        if self.accelerator is None:
            yield
            return
        with self.accelerator.main_process_first():
            yield


def innermost_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's (and DeepSpeed's) wrappers, which hold it as `.optimizer`."""
    inner = optimizer
    while not isinstance(inner, torch.optim.Optimizer) or hasattr(inner, "optimizer"):
        inner = inner.optimizer
    return inner
