"""Checkpoints are atomic, and a run interrupted after step 2 resumes bit-identically (CPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from smoke_config import train_config

from pipeline.config import TrainConfig
from pipeline.modeling.models import tiny_random_model
from pipeline.rl.checkpoint import latest_checkpoint, list_checkpoints
from pipeline.rl.trainer import Trainer

pytestmark = pytest.mark.integration


def _cfg(
    out: Path, steps: int = 4, precision: str = "auto", overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """smoke's INTUITOR run of `steps` steps into `out`, a checkpoint every step, no tracking."""
    return train_config(
        "intuitor",
        overrides={
            "algorithm.steps": steps,
            "algorithm.group_size": 4,
            "algorithm.prompts_per_step": 2,
            "algorithm.lr": 1e-3,
            "algorithm.micro_batch_size": 3,
            "algorithm.max_new_tokens": 10,
            "trainer.output_dir": str(out),
            "trainer.checkpoint_every": 1,
            "trainer.keep_last": 2,
            "trainer.mixed_precision": precision,
            "tracking.backend": "null",
            **(overrides or {}),
        },
    )


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_interrupted_run_resumes_bit_identically(tmp_path, tokenizer, toy_prompts, precision: str) -> None:
    # bf16 autocast too: its kernels are deterministic on one machine, so resume stays bit-identical
    full_model = tiny_random_model(seed=3)
    full_cfg = _cfg(tmp_path / "full", precision=precision)
    full = Trainer(full_cfg, full_model, tokenizer, toy_prompts, show_progress=False).train()
    assert full.mixed_precision == precision

    first = Trainer(
        _cfg(tmp_path / "cut", precision=precision),
        tiny_random_model(seed=3),
        tokenizer,
        toy_prompts,
        show_progress=False,
    )
    part = first.train(stop_after=2)
    assert len(part.history) == 2 and part.final_model is None
    assert latest_checkpoint(tmp_path / "cut" / "checkpoints").name == "step_000002"
    # a fresh process would rebuild everything from the base model, then resume
    resumed_model = tiny_random_model(seed=3)
    second = Trainer(
        _cfg(tmp_path / "cut", precision=precision),
        resumed_model,
        tokenizer,
        toy_prompts,
        show_progress=False,
    )
    rest = second.train()
    assert rest.resumed_from == 2
    for k, v in full_model.state_dict().items():
        assert torch.equal(v, resumed_model.state_dict()[k]), k
    # the metrics of the resumed run equal the uninterrupted run's, step by step
    drop = ("time/", "throughput/")
    strip = [{k: v for k, v in m.items() if not k.startswith(drop)} for m in rest.history]
    expected = [{k: v for k, v in m.items() if not k.startswith(drop)} for m in full.history]
    assert json.dumps(strip) == json.dumps(expected)  # via JSON: NaN == NaN there


def test_half_written_checkpoint_is_ignored_and_old_ones_pruned(tmp_path, tokenizer, toy_prompts) -> None:
    out = tmp_path / "run"
    first = Trainer(
        _cfg(out, steps=4), tiny_random_model(seed=3), tokenizer, toy_prompts, show_progress=False
    )
    first.train(stop_after=3)
    ckpts = list_checkpoints(out / "checkpoints")
    assert [p.name for p in ckpts] == ["step_000002", "step_000003"]  # keep_last = 2
    # A crash mid-write leaves a temporary folder; a folder without the state file is incomplete too.
    (out / "checkpoints" / ".step_000004.tmp123").mkdir()
    broken = out / "checkpoints" / "step_000009"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"garbage")
    assert latest_checkpoint(out / "checkpoints").name == "step_000003"
    resumed = Trainer(
        _cfg(out, steps=4), tiny_random_model(seed=3), tokenizer, toy_prompts, show_progress=False
    )
    assert resumed.train().resumed_from == 3
    assert not (out / "checkpoints" / ".step_000004.tmp123").exists()


def test_checkpoint_of_another_config_is_not_resumed(tmp_path, tokenizer, toy_prompts) -> None:
    out = tmp_path / "run"
    Trainer(
        _cfg(out, steps=3), tiny_random_model(seed=3), tokenizer, toy_prompts, show_progress=False
    ).train()
    # a different trajectory: the old checkpoints must not be continued
    changed = _cfg(out, steps=3, overrides={"algorithm.lr": 5e-4})
    result = Trainer(changed, tiny_random_model(seed=3), tokenizer, toy_prompts, show_progress=False).train()
    assert result.resumed_from == 0 and len(result.history) == 3
    # bookkeeping-only changes keep the checkpoint valid
    again = _cfg(out, steps=3, overrides={"algorithm.lr": 5e-4, "trainer.keep_last": 5})
    assert (
        Trainer(again, tiny_random_model(seed=3), tokenizer, toy_prompts, show_progress=False)
        .train()
        .resumed_from
        == 3
    )
