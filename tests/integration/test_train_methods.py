"""Each method trains 3 steps on the tiny model, logging to a real MLflow sqlite store."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient
from smoke_config import METHODS, train_config

from pipeline.config import TrainConfig
from pipeline.eval.math_grader import extract_answer, grade
from pipeline.modeling.models import tiny_random_model
from pipeline.rl.trainer import Trainer
from pipeline.tracking import MLflowTracker, NullTracker
from pipeline.types import Prompt

pytestmark = pytest.mark.integration

REQUIRED = [
    "reward/mean",
    "reward/std",
    "self_certainty/mean",
    "self_certainty/group_std",
    "gold/accuracy",
    "gold/answer_rate",
    "completion/length_mean",
    "completion/length_max",
    "completion/clipped_ratio",
    "kl",
    "entropy/mean",
    "clip_fraction",
    "grad_norm",
    "lr",
    "time/step_s",
    "throughput/tokens_per_s",
    "gold/reward_correlation",
]
# What these tests run: smoke's config of the method with these changes.
CHANGES: dict[str, Any] = {
    "algorithm.steps": 3,
    "algorithm.group_size": 4,
    "algorithm.prompts_per_step": 2,
    "algorithm.lr": 1e-3,
    "algorithm.micro_batch_size": 3,
    "algorithm.max_new_tokens": 12,
    "trainer.log_completions": 4,
    "tracking.experiment": "test",
}


def _cfg(tmp_path: Path, method: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """smoke's `method` with CHANGES and `overrides`; checkpoints in tmp_path/<method>, MLflow beside."""
    return train_config(method, tmp_path, {**CHANGES, **(overrides or {})})


class _Tables(NullTracker):
    """Keeps the tables a trainer logs (its completions), logs nothing else."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        super().log_table(rows, artifact_file)
        self.rows.extend(rows)


def _answerable(cfg: TrainConfig, tokenizer, prompts: list[Prompt]) -> list[Prompt]:
    """`prompts` graded as smoke's arith training data is (a completion without a box answers with its
    last number), each gold set to an answer the seeded model gives in some but not all of its step-0
    completions of that prompt, where one exists.

    The random model never writes `\\boxed{}`: with the toy prompts' "none" fallback the gold and
    plurality-vote rewards are 0 for every completion, so advantages are 0 and nothing is updated. A
    rollout depends on the weights, the prompts' text and the seed, never on a gold: a run on the
    returned prompts samples at step 0 exactly the completions this probe step saw (later steps differ
    once the weights move)."""
    numbered = [dataclasses.replace(p, answer_fallback="last_number") for p in prompts]
    rows = cfg.algorithm.group_size * cfg.algorithm.prompts_per_step
    probe_cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, log_completions=rows))
    tables = _Tables()
    probe = Trainer(
        probe_cfg, tiny_random_model(seed=1), tokenizer, numbered, tracker=tables, show_progress=False
    )
    probe.step(0)
    assert len(tables.rows) == rows
    texts: dict[str, list[str]] = {}
    for row in tables.rows:
        texts.setdefault(row["prompt_id"], []).append(row["completion"])
    gold: dict[str, str] = {}
    for pid, group in texts.items():
        for text in group:
            answer = extract_answer(text, "last_number").answer
            if answer is None:
                continue
            right = sum(grade(t, answer, "last_number").correct for t in group)
            if 0 < right < len(group):
                gold[pid] = answer
                break
    assert gold, f"no step-0 group has an answer that some but not all completions give: {texts}"
    return [dataclasses.replace(p, gold=gold.get(p.id, p.gold)) for p in numbered]


@pytest.mark.parametrize("method", METHODS)
def test_three_steps_per_method(tmp_path, tokenizer, toy_prompts, method: str) -> None:
    cfg = _cfg(tmp_path, method)
    prompts = toy_prompts
    if method in ("grpo", "grpo_pv"):  # rewards read from the completions' answers
        prompts = _answerable(cfg, tokenizer, toy_prompts)
    model = tiny_random_model(seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tracker = MLflowTracker(cfg.tracking)
    with tracker.run(f"train-{method}", tags={"method": method}) as run_id:
        result = Trainer(cfg, model, tokenizer, prompts, tracker=tracker, show_progress=False).train()
    assert [m["step"] for m in result.history] == [0, 1, 2]
    last = result.history[-1]
    for key in REQUIRED:
        assert key in last, key
    assert all(math.isfinite(v) for k, v in last.items() if k != "gold/reward_correlation")
    assert (result.final_model / "config.json").is_file()
    # Every method's rewards vary within a group at step 0 (the continuous label-free ones within every
    # group; gold and vote where some but not all completions are right / in the plurality) -> non-zero
    # advantages -> an update. Checked apart from the weights: under bf16 autocast the KL term against
    # the bf16 reference alone moves them, whatever the advantages.
    assert result.history[0]["reward/group_std"] > 0
    changed = max(float((model.state_dict()[k] - before[k]).abs().max()) for k in before)
    assert changed > 0
    client = MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    history = client.get_metric_history(run_id, "reward/mean")
    assert [h.step for h in history] == [0, 1, 2]
    assert history[-1].value == pytest.approx(last["reward/mean"])
    assert client.get_run(run_id).data.tags["method"] == method
    assert "completions.json" in [a.path for a in client.list_artifacts(run_id)]


def test_beta_zero_skips_reference(tmp_path, tokenizer, toy_prompts) -> None:
    cfg = _cfg(tmp_path, "intuitor", {"algorithm.beta": 0.0})
    trainer = Trainer(cfg, tiny_random_model(seed=1), tokenizer, toy_prompts, show_progress=False)
    assert trainer.reference is None
    result = trainer.train()
    assert "kl" not in result.history[-1]
    # the offline ablation needs the reference even with beta = 0
    cfg_off = _cfg(tmp_path, "intuitor_offline", {"algorithm.beta": 0.0})
    assert Trainer(cfg_off, tiny_random_model(seed=1), tokenizer, toy_prompts, show_progress=False).reference


def test_num_iterations_reuses_rollouts(tmp_path, tokenizer, toy_prompts) -> None:
    cfg = _cfg(tmp_path, "intuitor", {"algorithm.num_iterations": 2})
    trainer = Trainer(cfg, tiny_random_model(seed=1), tokenizer, toy_prompts, show_progress=False)
    result = trainer.train()
    assert len(result.history) == 3
    # two optimizer steps per rollout batch
    assert trainer.scheduler.last_epoch == 6
    assert all(int(s["step"]) == 6 for s in trainer.optimizer.state.values())


def test_reference_stays_the_base_model(tmp_path, tokenizer, toy_prompts) -> None:
    model = tiny_random_model(seed=1)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(_cfg(tmp_path, "intuitor"), model, tokenizer, toy_prompts, show_progress=False)
    trainer.train()
    for k, v in trainer.reference.state_dict().items():
        assert torch.equal(v, base[k].to(v.dtype))  # kept in bf16 under bf16 autocast


def _one_step(tmp_path, tokenizer, toy_prompts, **trainer) -> tuple[dict, Trainer]:
    overrides = {
        "algorithm.steps": 1,
        "algorithm.warmup_ratio": 0.0,  # a warm-up step would have lr 0
        "tracking.backend": "null",
        **{f"trainer.{key}": value for key, value in trainer.items()},
        "trainer.output_dir": str(tmp_path / "-".join(f"{k}{v}" for k, v in trainer.items())),
    }
    cfg = _cfg(tmp_path, "intuitor", overrides)
    t = Trainer(cfg, tiny_random_model(seed=1), tokenizer, toy_prompts, show_progress=False)
    t.train()
    return {k: v.clone() for k, v in t.policy.state_dict().items()}, t


def test_gradient_checkpointing_changes_nothing(tmp_path, tokenizer, toy_prompts) -> None:
    # fp32: the two passes cut the work differently, which bf16 would round differently
    plain, _ = _one_step(tmp_path, tokenizer, toy_prompts, mixed_precision="no")
    ckpt, t = _one_step(tmp_path, tokenizer, toy_prompts, mixed_precision="no", gradient_checkpointing=True)
    assert t.policy.model.gradient_checkpointing and not t.policy.training  # back in eval mode
    init = tiny_random_model(seed=1).state_dict()
    assert max(float((plain[k] - init[k]).abs().max()) for k in init) > 1e-4
    # HF drops the KV cache under checkpointing, so that pass runs whole rows where the plain one runs
    # each prompt once: equal up to float rounding, which Adam's normalisation of near-zero gradients
    # lifts to ~1e-6 of the weights (both passes match the float64 brute force: tests/unit/test_scoring).
    assert max(float((plain[k] - ckpt[k]).abs().max()) for k in init) < 1e-5


def test_gradient_checkpointing_refuses_dropout(tmp_path, tokenizer, toy_prompts) -> None:
    model = tiny_random_model(seed=1)
    model.config.attention_dropout = 0.1
    cfg = _cfg(tmp_path, "intuitor", {"trainer.gradient_checkpointing": True})
    with pytest.raises(ValueError, match="without dropout"):
        Trainer(cfg, model, tokenizer, toy_prompts, show_progress=False)


def test_bf16_autocast_and_offloaded_reference(tmp_path, tokenizer, toy_prompts) -> None:
    params, t = _one_step(tmp_path, tokenizer, toy_prompts, mixed_precision="bf16", offload_reference=True)
    assert t.reference is not None and next(t.reference.parameters()).dtype == torch.bfloat16
    assert next(t.policy.parameters()).dtype == torch.float32  # master weights stay fp32
    plain, _ = _one_step(tmp_path, tokenizer, toy_prompts, mixed_precision="no")
    # bf16 changes the numbers a little, not the direction of the update
    init = tiny_random_model(seed=1).state_dict()
    d_bf16 = torch.cat([(params[k] - init[k]).flatten() for k in init])
    d_fp32 = torch.cat([(plain[k] - init[k]).flatten() for k in init])
    assert not torch.equal(d_bf16, d_fp32)
    cos = float(torch.nn.functional.cosine_similarity(d_bf16, d_fp32, dim=0))
    assert cos > 0.9


def _count_scoring_calls(t: Trainer) -> list[int]:
    """[count] of decoder calls outside rollouts, kept up to date while `t` trains."""
    calls = [0]
    t.policy.get_decoder().register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    generate = t.engine.generate

    def counted(*a, **k):
        before = calls[0]
        out = generate(*a, **k)
        calls[0] = before  # decode steps do not count
        return out

    t.engine.generate = counted
    return calls


def _intuitor_step(
    tmp_path, tokenizer, toy_prompts, record: bool, micro_batch: int, aggregation: str = "bnpo"
) -> tuple:
    """One fp32 INTUITOR step: (weight change [P], metrics, decoder calls outside rollouts).

    record: the engine records certainty and entropy during rollout (the HF engine) or not (as vLLM)."""
    overrides = {
        "algorithm.steps": 1,
        "algorithm.warmup_ratio": 0.0,
        "algorithm.micro_batch_size": micro_batch,
        "algorithm.loss_aggregation": aggregation,
        "tracking.backend": "null",
        "trainer.output_dir": str(tmp_path / f"record{record}-mb{micro_batch}-{aggregation}"),
        # fp32: generate's logits and the scoring pass's come from different kernels, which bf16 would
        # round differently; the equivalence is what is tested here
        "trainer.mixed_precision": "no",
    }
    cfg = _cfg(tmp_path, "intuitor", overrides)
    t = Trainer(cfg, tiny_random_model(seed=1), tokenizer, toy_prompts, show_progress=False)
    t.engine.record_token_scores = record
    calls = _count_scoring_calls(t)
    metrics = t.train().history[0]
    init = tiny_random_model(seed=1).state_dict()
    delta = torch.cat([(t.policy.state_dict()[k] - init[k]).flatten() for k in init])
    return delta, metrics, calls[0]


def _same_step(a: tuple, b: tuple) -> None:
    (d_a, m_a, _), (d_b, m_b, _) = a, b
    for key in (
        "self_certainty/mean",
        "entropy/mean",
        "reward/mean",
        "reward/std",
        "kl",
        "loss",
        "grad_norm",
    ):
        assert m_a[key] == pytest.approx(m_b[key], rel=1e-4, abs=1e-7), key
    assert m_a["clip_fraction"] == m_b["clip_fraction"] == 0.0
    # Adam's first step is ~lr * sign(g): float-rounding differences in near-zero gradients move single
    # weights by up to a few % of lr (1e-3 here); the update as a whole is the same.
    assert float(d_b.abs().max()) > 5e-4
    assert float((d_a - d_b).abs().max()) < 1e-4
    assert float(torch.nn.functional.cosine_similarity(d_a, d_b, dim=0)) > 0.9999


def test_one_iteration_skips_the_policy_scoring_pass(tmp_path, tokenizer, toy_prompts) -> None:
    """With 1 iteration, certainty and entropy come from generate's logits and the old log-probs from the
    gradient pass: one decoder pass fewer per micro-batch, and the same step as with the pass."""
    recorded = _intuitor_step(tmp_path, tokenizer, toy_prompts, record=True, micro_batch=3)
    with_pass = _intuitor_step(tmp_path, tokenizer, toy_prompts, record=False, micro_batch=3)
    # 8 sequences in micro-batches of 3 (not whole groups of 4): 3 micro-batches x (prompt pass +
    # completion pass) fewer
    assert with_pass[2] - recorded[2] == 3 * 2
    _same_step(recorded, with_pass)


def test_whole_group_micro_batches_take_certainty_from_the_gradient_pass(
    tmp_path, tokenizer, toy_prompts
) -> None:
    """Unrecorded scores (vLLM) with micro-batches of whole groups: no policy scoring pass, the rewards
    from the gradient pass's logits, and the same step as the two-pass one."""
    fused = _intuitor_step(tmp_path, tokenizer, toy_prompts, record=False, micro_batch=4)
    recorded = _intuitor_step(tmp_path, tokenizer, toy_prompts, record=True, micro_batch=4)
    assert fused[2] == recorded[2] == 2 * 2  # the reference pass only: 2 micro-batches x 2 decoder calls
    assert fused[1]["self_certainty/mean"] > 0 and fused[1]["reward/std"] > 0
    _same_step(fused, recorded)
    # bnpo's step depends on how rows are cut into micro-batches, dapo's does not: so against the
    # separate scoring pass (micro-batches of 3, not whole groups) under dapo
    fused = _intuitor_step(tmp_path, tokenizer, toy_prompts, record=False, micro_batch=4, aggregation="dapo")
    with_pass = _intuitor_step(
        tmp_path, tokenizer, toy_prompts, record=False, micro_batch=3, aggregation="dapo"
    )
    assert (
        with_pass[2] == fused[2] + 3 * 2 + 3 * 2 - 2 * 2
    )  # policy + reference passes in 3s vs reference in 4s
    _same_step(fused, with_pass)
