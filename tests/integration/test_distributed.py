"""Multi-process training (torchrun, gloo, 2 CPU processes; DDP, DeepSpeed ZeRO-2/3, FSDP2) computes what
one process computes, and its checkpoints resume on any process count and strategy."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from smoke_config import train_config

from pipeline.config import TrainConfig, to_dict
from pipeline.config.compose import compose_config
from pipeline.modeling.models import tiny_random_model
from pipeline.parallel.launch import launch_command

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _cfg(
    out: Path,
    processes: int,
    aggregation: str,
    accelerate_config: str | None = None,
    micro_batch: int = 3,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """smoke's INTUITOR run on `processes` processes, base model and run folder under `out`."""
    return train_config(
        "intuitor",
        overrides={
            "model.cache_dir": str(out / "base"),
            "model.system_prompt": None,
            "data.train_size": 16,
            "data.test_size": 4,
            "algorithm.steps": 2,
            "algorithm.group_size": 4,
            "algorithm.prompts_per_step": 4,
            "algorithm.max_new_tokens": 8,
            "algorithm.lr": 1e-4,
            "algorithm.warmup_ratio": 0.0,
            "algorithm.beta": 0.05,  # the reference pass and the KL term take part
            "algorithm.loss_aggregation": aggregation,
            # 3: micro-batches straddle prompts, differently on 1 and 2 processes (dapo is invariant to
            # the cut; bnpo, grpo and dr_grpo are TRL's per-micro-batch means, equal only for aligned cuts)
            "algorithm.micro_batch_size": micro_batch,
            # below the first step's gradient norm (~0.49): clipping takes part
            "algorithm.max_grad_norm": 0.3,
            "trainer.output_dir": str(out / "run"),
            "trainer.processes": processes,
            "trainer.accelerate_config": accelerate_config,
            "trainer.checkpoint_every": 1,
            "trainer.threads": 1,
            # fp32: 1 and 2 processes cut micro-batches differently, and bf16 rounds each cut's matmuls
            # differently (2e-4 of the weights, measured): the test is about the distribution's math.
            "trainer.mixed_precision": "no",
            "tracking.backend": "null",
            **(overrides or {}),
        },
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
    # ...identically (float tolerance) on 1 and 2 processes: AdamW's first step moves a weight by ~lr
    # whatever its gradient's size, so a near-zero gradient summed in another order can move it by 1e-6.
    assert diff < 5e-6, diff
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


@pytest.mark.parametrize(
    ("aggregation", "micro_batch"), [("dapo", 3), ("bnpo", 4), ("grpo", 4), ("dr_grpo", 4)]
)
def test_two_processes_match_one(tmp_path: Path, aggregation: str, micro_batch: int) -> None:
    """16 rows: dapo with straddling micro-batches of 3; the per-micro-batch means with micro-batches of
    4 (one process: K = 4 of 4 rows; two: K = 2 each of the same rows, and DDP's mean over 2)."""
    one, two = tmp_path / "one", tmp_path / "two"
    _train(_cfg(one, 1, aggregation, micro_batch=micro_batch), tmp_path)
    _train(_cfg(two, 2, aggregation, micro_batch=micro_batch), tmp_path)
    _assert_same_run(one, two)
    assert len(_metrics(two)) == 2  # one metrics line per step, written once


def test_checkpoint_resumes_on_another_process_count(tmp_path: Path) -> None:
    one, mixed = tmp_path / "one", tmp_path / "mixed"
    _train(_cfg(one, 1, "dapo"), tmp_path)
    _train(_cfg(mixed, 2, "dapo"), tmp_path, stop_after=1)  # step 1 on two processes...
    assert (mixed / "run" / "checkpoints" / "step_000001").is_dir()
    assert not (mixed / "run" / "final").exists()
    _train(_cfg(mixed, 1, "dapo"), tmp_path)  # ...step 2 resumed on one
    _assert_same_run(one, mixed)


# ------------------------------------------------------------- DeepSpeed ZeRO and FSDP2 (gloo)
ZERO2 = str(REPO / "conf" / "accelerate" / "deepspeed_zero2.yaml")
FSDP2 = str(REPO / "conf" / "accelerate" / "fsdp2.yaml")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("one")
    _train(_cfg(tmp / "one", 1, "dapo"), tmp)
    return tmp / "one"


@pytest.fixture(scope="module")
def zero3(tmp_path_factory: pytest.TempPathFactory) -> str:
    """ZeRO-3 through a DeepSpeed JSON that partitions every parameter: by default DeepSpeed keeps
    parameters under 1e5 elements whole, which is all of the tiny model's."""
    folder = tmp_path_factory.mktemp("zero3")
    spec = {"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}
    (folder / "zero3.json").write_text(json.dumps(spec), encoding="utf-8")
    json_file = folder / "zero3.json"
    yaml_text = f"distributed_type: DEEPSPEED\ndeepspeed_config:\n  deepspeed_config_file: {json_file}\n"
    (folder / "zero3.yaml").write_text(yaml_text, encoding="utf-8")
    return str(folder / "zero3.yaml")


def _optimizer_state(out: Path, step: int) -> dict:
    path = out / "run" / "checkpoints" / f"step_{step:06d}" / "trainer_state.pt"
    return torch.load(path, weights_only=False)["optimizer"]


@pytest.mark.parametrize("strategy", ["zero2", "zero3", "fsdp2"])
def test_sharded_matches_one_process(tmp_path: Path, one_process: Path, zero3: str, strategy: str) -> None:
    out = tmp_path / strategy
    _train(_cfg(out, 2, "dapo", {"zero2": ZERO2, "zero3": zero3, "fsdp2": FSDP2}[strategy]), tmp_path)
    _assert_same_run(one_process, out)
    # The checkpoint holds the whole AdamW state in torch's format, gathered from the shards.
    want, got = _optimizer_state(one_process, 1), _optimizer_state(out, 1)
    assert got["param_groups"][0]["lr"] == want["param_groups"][0]["lr"]
    assert sorted(got["state"]) == sorted(want["state"]) and len(want["state"]) == 21
    for i, entry in want["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.allclose(got["state"][i][key], entry[key], rtol=1e-4, atol=1e-9), (i, key)


def test_token_budget_micro_batches_under_zero3(tmp_path: Path, one_process: Path, zero3: str) -> None:
    """Micro-batches cut by a token budget differ per process (ragged completions); the shorter list
    is split so that every process makes as many backward calls. Same run as one process."""
    budget = {"algorithm.micro_batch_size": 8, "algorithm.micro_batch_tokens": 40}
    cfg = _cfg(tmp_path / "budget", 2, "dapo", zero3, overrides=budget)
    _train(cfg, tmp_path)
    _assert_same_run(one_process, tmp_path / "budget")


@pytest.mark.parametrize(
    ("first", "then"), [("zero3", None), (None, "zero2"), ("fsdp2", "zero3"), ("zero2", "fsdp2")]
)
def test_sharded_checkpoints_resume_across_strategies(
    tmp_path: Path, one_process: Path, zero3: str, first: str | None, then: str | None
) -> None:
    configs = {None: None, "zero2": ZERO2, "zero3": zero3, "fsdp2": FSDP2}
    out = tmp_path / "run"
    # Step 1 under one strategy (one process when None), step 2 resumed under the other.
    _train(_cfg(out, 1 if first is None else 2, "dapo", configs[first]), tmp_path, stop_after=1)
    _train(_cfg(out, 1 if then is None else 2, "dapo", configs[then]), tmp_path)
    _assert_same_run(one_process, out)


@pytest.mark.slow
def test_tied_embeddings_sharded_and_resumed(tmp_path: Path, zero3: str) -> None:
    """The real SmolLM2-135M (output head tied to the input embedding, which the tiny model is not):
    FSDP2 for step 1, resumed under ZeRO-3 (every parameter partitioned) for step 2, ends where one
    process ends, and saves the same tensors (the tied head stored once)."""

    # conf/model/smollm2_135m.yaml: the embedded SmolLM2-135M-Instruct (and the paper's system prompt)
    smol = dataclasses.replace(compose_config(["model=smollm2_135m"]).model, cache_dir=str(tmp_path / "base"))
    smaller = {
        "algorithm.group_size": 2,
        "algorithm.prompts_per_step": 2,
        "algorithm.max_new_tokens": 6,
        "algorithm.micro_batch_size": 4,
        "algorithm.lr": 1e-5,
    }

    def cfg(out: Path, processes: int, accelerate_config: str | None) -> TrainConfig:
        return dataclasses.replace(
            _cfg(out, processes, "dapo", accelerate_config, overrides=smaller), model=smol
        )

    one, mixed = tmp_path / "one", tmp_path / "mixed"
    _train(cfg(one, 1, None), tmp_path)
    _train(cfg(mixed, 2, FSDP2), tmp_path, stop_after=1)
    _train(cfg(mixed, 2, zero3), tmp_path)
    pa, pb = _params(one), _params(mixed)
    assert sorted(pa) == sorted(pb) and "lm_head.weight" not in pa
    assert max(float((pa[k] - pb[k]).abs().max()) for k in pa) < 5e-6
    for ma, mb in zip(_metrics(one), _metrics(mixed), strict=True):
        assert mb["grad_norm"] == pytest.approx(ma["grad_norm"], rel=1e-4)
