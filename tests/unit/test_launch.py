"""The multi-process launcher's command lines and the checks that run before any process starts."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
from smoke_config import smoke, trainer_config

from pipeline.config import ConfigError
from pipeline.config.params import check_runnable
from pipeline.parallel.distributed import Distributed
from pipeline.parallel.launch import launch_command, needs_launch
from pipeline.parallel.strategy import check_strategy


def test_cpu_launch_is_torchrun() -> None:
    argv = launch_command(trainer_config(processes=2), ["-m", "stages.train", "--method", "grpo"])
    assert argv == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "stages.train",
        "--method",
        "grpo",
    ]


def test_gpu_launch_is_accelerate(tmp_path) -> None:
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text("distributed_type: MULTI_GPU\n")
    argv = launch_command(trainer_config(device="cuda", processes=8, accelerate_config=str(cfg)), ["x.py"])
    assert argv[1:] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(cfg),
        "--num_processes",
        "8",
        "x.py",
    ]
    with pytest.raises(ConfigError, match=r"trainer\.accelerate_config"):
        launch_command(trainer_config(device="cuda", processes=8), ["x.py"])


def test_needs_launch_only_outside_a_launched_group(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert needs_launch(trainer_config(processes=2)) and not needs_launch(trainer_config(processes=1))
    monkeypatch.setenv("WORLD_SIZE", "2")  # inside torchrun: train, do not launch again
    assert not needs_launch(trainer_config(processes=2))


def test_checks_before_launch(tmp_path) -> None:
    cfg = copy.deepcopy(smoke())
    cfg.trainer.processes = 3
    cfg.algorithm.prompts_per_step = 4
    with pytest.raises(ConfigError, match=r"prompts_per_step=4 is not divisible by trainer\.processes=3"):
        check_runnable(cfg)
    cfg.trainer.processes, cfg.trainer.device = 2, "cuda"
    with pytest.raises(ConfigError, match=r"trainer\.accelerate_config"):
        check_runnable(cfg)
    # accelerate configs the launcher refuses, each with the file and the reason in the error
    bad = {
        "fsdp.yaml": ("distributed_type: FSDP\n", r"fsdp\.yaml: fsdp_config\.fsdp_version must be 2"),
        "megatron.yaml": (
            "distributed_type: MEGATRON_LM\n",
            r"megatron\.yaml: distributed_type MEGATRON_LM is not supported",
        ),
        "zero4.yaml": (
            "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 4\n",
            r"zero4\.yaml: the ZeRO stage \(zero_stage\) must be 1, 2 or 3",
        ),
    }
    for name, (text, error) in bad.items():
        (tmp_path / name).write_text(text)
        cfg.trainer.accelerate_config = str(tmp_path / name)
        with pytest.raises(ConfigError, match=error):
            check_runnable(cfg)
    ds = tmp_path / "zero3.yaml"
    cfg.trainer.accelerate_config = str(ds)
    ds.write_text("distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 3\n")
    check_runnable(cfg)  # DeepSpeed ZeRO-3 is run
    cfg.trainer.device = "cpu"  # ...on CPU too (gloo), where a named config must exist
    cfg.trainer.accelerate_config = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"missing\.yaml' is not a file"):
        check_runnable(cfg)


def test_shipped_accelerate_configs() -> None:
    for name in ("ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp2"):
        check_strategy(Path(f"conf/accelerate/{name}.yaml"))


def test_single_process_shard_is_everything() -> None:
    d = Distributed()
    assert d.shard([1, 2, 3]) == ([1, 2, 3], 0) and d.world_size == 1 and d.is_main
