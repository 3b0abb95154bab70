"""Multi-process training (torchrun, gloo, 2 CPU processes) computes what one process computes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import (
    AlgorithmConfig,
    DataConfig,
    MethodConfig,
    ModelConfig,
    RewardSpec,
    TrackingConfig,
    TrainConfig,
    TrainerConfig,
    to_dict,
)
from pipeline.launcher import launch_command
from pipeline.models import tiny_random_model

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _cfg(out: Path, processes: int, aggregation: str) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(
            name_or_path="builtin:tiny-random", cache_dir=str(out / "base"), system_prompt=None
        ),
        data=DataConfig(name="arith", train_size=16, test_size=4),
        method=MethodConfig(name="intuitor", rewards=[RewardSpec("self_certainty")]),
        algorithm=AlgorithmConfig(
            steps=2,
            group_size=4,
            prompts_per_step=4,
            max_new_tokens=8,
            lr=1e-4,
            warmup_ratio=0.0,
            beta=0.05,  # the reference pass and the KL term take part
            loss_aggregation=aggregation,
            micro_batch_size=3,  # micro-batches straddle prompts, differently on 1 and 2 processes
        ),
        trainer=TrainerConfig(
            output_dir=str(out / "run"), processes=processes, checkpoint_every=1, threads=1
        ),
        tracking=TrackingConfig(backend="null"),
    )


def _train(cfg: TrainConfig, tmp: Path, stop_after: int | None = None) -> None:
    path = tmp / f"cfg-{len(list(tmp.glob('cfg-*.json')))}.json"
    path.write_text(json.dumps(to_dict(cfg)), encoding="utf-8")
    target = [str(WORKER), str(path), *([] if stop_after is None else [str(stop_after)])]
    if cfg.trainer.processes > 1:
        argv = launch_command(cfg.trainer, target)
        assert argv[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    else:
        argv = [sys.executable, *target]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]


def _params(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "run" / "final" / "model.safetensors"))


def _metrics(out: Path) -> list[dict[str, float]]:
    return [json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(a: Path, b: Path) -> None:
    pa, pb = _params(a), _params(b)
    init = tiny_random_model(seed=0).state_dict()
    moved = max(float((pa[k] - init[k]).abs().max()) for k in pa)
    diff = max(float((pa[k] - pb[k]).abs().max()) for k in pa)
    assert moved > 1e-4  # training changed the weights...
    assert diff < 1e-6, diff  # ...identically (float tolerance) on 1 and 2 processes
    for ma, mb in zip(_metrics(a), _metrics(b), strict=True):
        for key in (
            "reward/mean",
            "self_certainty/mean",
            "kl",
            "loss",
            "grad_norm",
            "completion/length_mean",
        ):
            assert ma[key] == pytest.approx(mb[key], rel=1e-4, abs=1e-7), key


@pytest.mark.parametrize("aggregation", ["bnpo", "grpo"])
def test_two_processes_match_one(tmp_path: Path, aggregation: str) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _train(_cfg(one, 1, aggregation), tmp_path)
    _train(_cfg(two, 2, aggregation), tmp_path)
    _assert_same_run(one, two)
    assert len(_metrics(two)) == 2  # one metrics line per step, written once


def test_checkpoint_resumes_on_another_process_count(tmp_path: Path) -> None:
    one, mixed = tmp_path / "one", tmp_path / "mixed"
    _train(_cfg(one, 1, "bnpo"), tmp_path)
    _train(_cfg(mixed, 2, "bnpo"), tmp_path, stop_after=1)  # step 1 on two processes...
    assert (mixed / "run" / "checkpoints" / "step_000001").is_dir()
    assert not (mixed / "run" / "final").exists()
    _train(_cfg(mixed, 1, "bnpo"), tmp_path)  # ...step 2 resumed on one
    _assert_same_run(one, mixed)
