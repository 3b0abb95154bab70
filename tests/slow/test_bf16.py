"""bf16 autocast on the real SmolLM2: the update points where fp32's does, the rewards barely move.

The numbers it allows are measured here (README.md, "Precision"): bf16 rounds
every matmul output, the logits included, to 8 mantissa bits.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.config import SamplingConfig
from pipeline.config.compose import compose_config
from pipeline.modeling.models import load_model_and_tokenizer
from pipeline.modeling.precision import autocast
from pipeline.rl.batch import collate_groups
from pipeline.rl.loss import grpo_loss, token_weights
from pipeline.rl.scoring import score_completions
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.tasks.math import load_math

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def batch_and_model(tmp_path_factory):
    # conf/model/smollm2_135m.yaml: the embedded SmolLM2-135M-Instruct with the paper's system prompt
    cfg = compose_config(["model=smollm2_135m"]).model
    cfg = dataclasses.replace(cfg, cache_dir=str(tmp_path_factory.mktemp("smol") / "base"))
    model, tok = load_model_and_tokenizer(cfg)
    prompts = load_math(None, "train", cfg.system_prompt, limit=2)
    engine = HFRolloutEngine(model, tok, show_progress=False)
    groups = engine.generate(prompts, 4, SamplingConfig(temperature=0.9, max_new_tokens=48), seed=0)
    return collate_groups(groups, tok.pad_token_id), model


def _pass(model, batch, precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(flat gradient of a GRPO loss, token log-probs, token self-certainty) in `precision`."""
    model.zero_grad(set_to_none=True)
    mask = batch.completion_mask
    with autocast(precision, "cpu"):
        s = score_completions(
            model,
            batch.input_ids,
            batch.attention_mask,
            batch.prompt_length,
            mask,
            with_certainty=False,
            with_grad=True,
        )
    with torch.no_grad(), autocast(precision, "cpu"):
        sc = score_completions(
            model, batch.input_ids, batch.attention_mask, batch.prompt_length, mask, with_grad=False
        ).self_certainty
    # fixed advantages: +1 for the first half of each group, -1 for the rest
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0] * batch.num_prompts)
    weights = token_weights(mask, "dapo", mask.shape[1], total_tokens=float(mask.sum()))
    lp = s.logprobs.float()
    terms = grpo_loss(lp, lp.detach(), adv, weights, clip_eps_low=0.2, clip_eps_high=0.2, beta=0.0)
    terms.loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return grad.double(), lp.detach().double(), sc.double()


def test_bf16_update_direction_agrees_with_fp32(batch_and_model) -> None:
    batch, model = batch_and_model
    g32, lp32, sc32 = _pass(model, batch, "no")
    g16, lp16, sc16 = _pass(model, batch, "bf16")
    m = batch.completion_mask.bool()
    cos = float(torch.nn.functional.cosine_similarity(g32, g16, dim=0))
    lp_err = float((lp32 - lp16)[m].abs().max())
    sc_rel = float(((sc32 - sc16)[m] / sc32[m]).abs().max())
    # the reward: self-certainty averaged over a completion's tokens
    n = batch.completion_mask.sum(-1)
    reward32 = (sc32 * batch.completion_mask).sum(-1) / n
    reward16 = (sc16 * batch.completion_mask).sum(-1) / n
    reward_rel = float(((reward32 - reward16) / reward32).abs().max())
    print(
        f"gradient cosine {cos:.4f}, max |dlogprob| {lp_err:.3f}, max rel dSC per token {sc_rel:.4f}, "
        f"per completion {reward_rel:.4f}"
    )
    assert not torch.equal(g32, g16)  # bf16 did run
    assert cos > 0.99  # measured 0.9992
    assert lp_err < 0.3  # measured 0.132
    assert sc_rel < 0.05  # measured 0.026
    assert reward_rel < 0.01  # measured 0.0025
