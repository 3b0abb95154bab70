"""Start a training entry point on `trainer.processes` processes with an existing launcher.

CPU: torchrun (`torch.distributed.run --standalone`, gloo): accelerate's own launcher starts a
single process for multi-CPU runs on one machine unless MPI is set up. GPU: `accelerate launch`
with the accelerate config the trainer names (DDP, DeepSpeed ZeRO-2/3, FSDP2 under conf/accelerate/).
Inside, `Distributed.from_config` finds the process group from the launcher's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline.config import TrainerConfig
from pipeline.parallel.strategy import check_accelerate_config, launched_world_size


def needs_launch(trainer: TrainerConfig) -> bool:
    """True when this process must start the others (more than one wanted, none launched yet)."""
    return trainer.processes > 1 and launched_world_size() == 1


def launch_command(trainer: TrainerConfig, target: list[str]) -> list[str]:
    """argv that runs `target` (["-m", module, args...] or [script, args...]) on trainer.processes."""
    n = str(trainer.processes)
    if trainer.device == "cpu":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", n, *target]
    check_accelerate_config(trainer)
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(trainer.accelerate_config),
        "--num_processes",
        n,
        *target,
    ]


def launch_train_stage(
    trainer: TrainerConfig,
    method: str,
    params: str,
    overrides: list[str] | None = None,
    env_extra: dict[str, str] | None = None,
) -> None:
    """Run `stages.train` for `method` on trainer.processes processes; raises SystemExit on failure."""
    target = ["-m", "stages.train", "--method", method, "--params", params, *(overrides or [])]
    code = run_launched(trainer, target, env_extra)
    if code:
        raise SystemExit(code)


def run_launched(trainer: TrainerConfig, target: list[str], env_extra: dict[str, str] | None = None) -> int:
    """Run `target` on trainer.processes processes and wait; returns the launcher's exit code."""
    env = {**os.environ, **(env_extra or {})}
    if trainer.threads > 0:
        env["OMP_NUM_THREADS"] = str(trainer.threads)
    return subprocess.run(launch_command(trainer, target), env=env, check=False).returncode
