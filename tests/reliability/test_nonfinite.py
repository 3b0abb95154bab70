"""A non-finite loss skips the update (weights and optimizer untouched) and is counted; K in a row stop
the run with its last good checkpoint named.

The NaN comes from a reward added to the registry, as a researcher's own reward would be: NaN rewards
make NaN advantages, a NaN loss and NaN gradients.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from smoke_config import train_config

from pipeline.config.compose import compose_params
from pipeline.modeling.models import tiny_random_model
from pipeline.rewards.registry import REWARDS
from pipeline.rewards.self_certainty import self_certainty_reward
from pipeline.rl.divergence import NonFiniteGuard, TrainingDiverged
from pipeline.rl.trainer import Trainer
from stages.common import run_stage

pytestmark = pytest.mark.integration


def _nan_at(calls: set[int]):
    """A reward that is self-certainty, except NaN at the given call numbers (one call per step)."""
    seen = [0]

    def reward(batch, spec):
        n = seen[0]
        seen[0] += 1
        r = self_certainty_reward(batch, spec)
        return torch.full_like(r, math.nan) if n in calls else r

    return reward


def _trainer(tmp_path, tokenizer, prompts, steps: int, max_nonfinite: int) -> Trainer:
    changes = {
        "method.name": "nan",
        "method.rewards": [{"name": "nan_sometimes", "weight": 1.0, "source": "policy"}],
        "algorithm.steps": steps,
        "algorithm.group_size": 2,
        "algorithm.prompts_per_step": 2,
        "algorithm.max_new_tokens": 6,
        "algorithm.micro_batch_size": 4,
        "algorithm.lr": 1e-3,
        "trainer.output_dir": str(tmp_path),
        "trainer.checkpoint_every": 1,
        "trainer.keep_last": 10,
        "trainer.max_nonfinite_steps": max_nonfinite,
        "tracking.backend": "null",
    }
    cfg = train_config("intuitor", overrides=changes)
    return Trainer(cfg, tiny_random_model(seed=1), tokenizer, prompts, show_progress=False)


def _weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_a_nonfinite_step_is_skipped_and_counted(tmp_path, tokenizer, toy_prompts, monkeypatch) -> None:
    monkeypatch.setitem(REWARDS, "nan_sometimes", _nan_at({1}))
    result = _trainer(tmp_path, tokenizer, toy_prompts, steps=3, max_nonfinite=2).train()
    skipped = [m["update/skipped"] for m in result.history]
    assert skipped == [0.0, 1.0, 0.0]
    assert [m["update/skipped_steps_total"] for m in result.history] == [0.0, 1.0, 1.0]
    assert math.isnan(result.history[1]["loss"]) and not math.isfinite(result.history[1]["grad_norm"])
    ckpts = tmp_path / "checkpoints"
    # step 1 changed nothing; steps 0 and 2 did
    assert _equal(_weights(ckpts / "step_000001"), _weights(ckpts / "step_000002"))
    assert not _equal(_weights(ckpts / "step_000002"), _weights(ckpts / "step_000003"))
    final = _weights(result.final_model)
    assert all(torch.isfinite(v).all() for v in final.values())


def test_k_nonfinite_steps_in_a_row_stop_the_run(tmp_path, tokenizer, toy_prompts, monkeypatch) -> None:
    monkeypatch.setitem(REWARDS, "nan_sometimes", _nan_at({1, 2, 3}))
    trainer = _trainer(tmp_path, tokenizer, toy_prompts, steps=6, max_nonfinite=3)
    with pytest.raises(TrainingDiverged) as info:
        trainer.train()
    message = str(info.value)
    assert "3 training steps in a row" in message and "steps 1-3" in message
    ckpts = tmp_path / "checkpoints"
    assert str(ckpts / "step_000004") in message  # the checkpoint after the last skipped step
    # every checkpoint since the last finite step holds that step's weights
    good = _weights(ckpts / "step_000001")
    for name in ("step_000002", "step_000003", "step_000004"):
        assert _equal(good, _weights(ckpts / name)), name
    assert not (ckpts / "step_000005").exists() and not (tmp_path / "final").exists()
    # a stage turns it into one line on stderr and exit code 3
    params = tmp_path / "params.yaml"
    compose_params(params, ["experiment=smoke"])

    def body(cfg) -> None:
        raise info.value

    assert run_stage(body, params=str(params)) == 3


def test_guard_counts_only_consecutive_steps() -> None:
    guard = NonFiniteGuard(limit=2)
    for step, skipped in enumerate([1, 0, 1, 0, 1]):
        guard.record(step, skipped)
        assert not guard.tripped  # never 2 in a row
    assert guard.total == 3
    guard.record(5, 1)
    assert guard.tripped
    with pytest.raises(TrainingDiverged, match="steps 4-5"):
        raise guard.diverged(5, None, "nan")
    never = NonFiniteGuard(limit=0)
    for step in range(10):
        never.record(step, 1)
        assert not never.tripped
