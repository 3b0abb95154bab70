"""One construction path for rollout engines: the train stage runs the step the benchmarks measure.

The stage's trainer is built by `run_training` from the composed experiment config (what
`stages/train.py` does); the benchmarked one as `bench/vs_trl.py` builds it. Decoder calls are
counted with a global forward hook, so neither construction is touched by the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from smoke_config import train_config

from pipeline.config import TrainConfig
from pipeline.modeling.models import load_model_and_tokenizer
from pipeline.rl.scoring import CompletionScorer
from pipeline.rl.trainer import Trainer
from pipeline.rollout.factory import make_engine
from pipeline.steps import run_training
from pipeline.types import Prompt

pytestmark = pytest.mark.integration


class DecoderCalls:
    """Counts forward calls of decoder stacks (the modules `get_decoder()` returns) of any model."""

    def __init__(self) -> None:
        self.count = 0
        self._handle = None

    def __enter__(self) -> DecoderCalls:
        def hook(module: torch.nn.Module, _args: object) -> None:
            if type(module).__name__.endswith("Model") and hasattr(module, "layers"):
                self.count += 1

        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._handle is not None
        self._handle.remove()


def _stage_config(tmp_path: Path, method: str, **algorithm: object) -> TrainConfig:
    """The TrainConfig the train stage builds for `method` in the smoke experiment (conf/ composed as
    `dvc exp run -S experiment=smoke` composes it), one step, no tracking, its files under tmp_path."""
    overrides = {
        "model.cache_dir": str(tmp_path / "base"),
        "algorithm.steps": 1,
        "tracking.backend": "null",
        **{f"algorithm.{key}": value for key, value in algorithm.items()},
    }
    return train_config(method, tmp_path / "runs", overrides)


@pytest.mark.parametrize("method", ["intuitor", "grpo"])
def test_stage_trainer_makes_the_benchmarked_decoder_calls(
    tmp_path: Path, toy_prompts: list[Prompt], method: str
) -> None:
    cfg = _stage_config(tmp_path, method)
    with DecoderCalls() as stage:
        run_training(cfg, show_progress=False, prompts=toy_prompts)

    # As bench/vs_trl.py builds its trainer: a loaded model handed to Trainer, one step.
    bench_cfg = _stage_config(tmp_path / "bench", method)
    policy, tokenizer = load_model_and_tokenizer(bench_cfg.model)
    trainer = Trainer(bench_cfg, policy, tokenizer, toy_prompts, show_progress=False)
    with DecoderCalls() as bench:
        trainer.step(0)

    alg = cfg.algorithm
    rows = alg.prompts_per_step * alg.group_size
    micro = -(-rows // alg.micro_batch_size)
    # Rollout: one shared prefill + one call per generated position (at most max_new_tokens); then the
    # reference pass and the gradient pass, each 2 calls per micro-batch (the distinct prompts once,
    # the completions on their copied cache); no policy no-grad pass (it would add 2 per micro-batch).
    assert bench.count <= 1 + alg.max_new_tokens + 2 * 2 * micro
    assert stage.count == bench.count
    assert trainer.engine.record_token_scores  # type: ignore[attr-defined]


@pytest.mark.parametrize("scaled", [False, True])
def test_recorded_self_certainty_honours_the_temperature_flag(
    tmp_path: Path, toy_prompts: list[Prompt], scaled: bool
) -> None:
    """The engine the factory builds records SC at the temperature the scoring pass uses."""
    cfg = _stage_config(tmp_path, "intuitor", sc_temperature_scaled=scaled, temperature=0.5)
    policy, tokenizer = load_model_and_tokenizer(cfg.model)
    engine = make_engine(cfg, policy, tokenizer, show_progress=False)
    groups = engine.generate(toy_prompts[:2], 3, cfg.sampling, seed=5)
    scorer = CompletionScorer(policy)
    for group in groups:
        assert group.token_scores is not None
        recorded = group.token_scores[0]  # [G, C] self-certainty
        prompt = group.prompt_ids.expand(group.completion_ids.shape[0], -1)
        ids = torch.cat([prompt, group.completion_ids], dim=1)
        attn = torch.cat([torch.ones_like(prompt), group.completion_mask], dim=1)
        with torch.no_grad():
            _, certainty, _ = scorer(
                ids,
                attn,
                group.completion_mask,
                prompt.shape[1],
                certainty_temperature=cfg.algorithm.certainty_temperature(),
            )
        mask = group.completion_mask.bool()
        torch.testing.assert_close(recorded[mask].double(), certainty[mask].double(), rtol=1e-4, atol=1e-5)
        with torch.no_grad():
            _, at_one, _ = scorer(
                ids, attn, group.completion_mask, prompt.shape[1], certainty_temperature=1.0
            )
        # the flag matters: at T = 0.5 the scaled and raw certainties differ
        assert torch.allclose(recorded[mask].double(), at_one[mask].double(), atol=1e-3) != scaled
