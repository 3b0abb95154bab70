"""The real embedded SmolLM2-135M-Instruct: dequantization, scoring vs brute force, one INTUITOR step."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from smoke_config import train_config
from transformers import AutoModelForCausalLM

from pipeline.config import SamplingConfig
from pipeline.config.compose import compose_config
from pipeline.modeling.models import embedded_gguf_path, load_model_and_tokenizer, resolve_model_path
from pipeline.modeling.prompt_cache import position_ids_from_mask
from pipeline.rl.batch import collate_groups
from pipeline.rl.scoring import score_completions
from pipeline.rl.trainer import Trainer
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.tasks.math import load_math

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    # conf/model/smollm2_135m.yaml: the embedded SmolLM2-135M-Instruct with the paper's system prompt
    cfg = compose_config(["model=smollm2_135m"]).model
    cfg = dataclasses.replace(cfg, cache_dir=str(tmp_path_factory.mktemp("smol") / "base"))
    model, tok = load_model_and_tokenizer(cfg)
    return cfg, model, tok


def test_dequantized_folder_is_plain_and_matches_gguf(smol) -> None:
    cfg, model, tok = smol
    folder = resolve_model_path(cfg)
    config = json.loads((__import__("pathlib").Path(folder) / "config.json").read_text())
    assert "quantization_config" not in config
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == tok.eos_token_id
    gguf = embedded_gguf_path("smollm2-135m-instruct")
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ids = torch.tensor([tok("The capital of France is")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, direct(input_ids=ids).logits)


def test_system_prompt_replaces_the_default(smol) -> None:
    _, _, tok = smol
    text = tok.apply_chat_template(
        [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Q"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert "SmolLM" not in text and text.startswith("<|im_start|>system\nSYS")


def test_real_model_scoring_matches_float64(smol) -> None:
    cfg, model, tok = smol
    prompts = load_math(None, "train", cfg.system_prompt, limit=2)
    engine = HFRolloutEngine(model, tok, show_progress=False)
    groups = engine.generate(prompts, 2, SamplingConfig(temperature=0.9, max_new_tokens=24), seed=0)
    batch = collate_groups(groups, tok.pad_token_id)
    s = score_completions(
        model,
        batch.input_ids,
        batch.attention_mask,
        batch.prompt_length,
        batch.completion_mask,
        chunk_tokens=7,
    )
    with torch.no_grad():
        logits = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=position_ids_from_mask(batch.attention_mask),
        ).logits
    z = logits.double()[:, batch.prompt_length - 1 : -1]
    p = z.softmax(-1)
    v = z.shape[-1]
    kl = (1 / v * torch.log((1 / v) / p)).sum(-1)
    m = batch.completion_mask.bool()
    assert kl[m].min() > 1.0  # a trained model is far from uniform
    torch.testing.assert_close(s.self_certainty.double()[m], kl[m], rtol=1e-5, atol=0)
    lp = z.log_softmax(-1).gather(-1, batch.completion_ids[..., None]).squeeze(-1)
    torch.testing.assert_close(s.logprobs.double()[m], lp[m], rtol=1e-4, atol=1e-4)


def test_one_intuitor_step_on_real_model(smol, tmp_path) -> None:
    cfg, model, tok = smol
    overrides = {
        "algorithm.steps": 1,
        "algorithm.group_size": 2,
        "algorithm.prompts_per_step": 1,
        "algorithm.max_new_tokens": 16,
        "trainer.output_dir": str(tmp_path / "run"),
        "tracking.backend": "null",
    }
    train_cfg = dataclasses.replace(train_config("intuitor", overrides=overrides), model=cfg)
    prompts = load_math(None, "train", cfg.system_prompt, limit=4)
    result = Trainer(train_cfg, model, tok, prompts, show_progress=False).train()
    m = result.history[0]
    assert m["self_certainty/mean"] > 1.0 and math.isfinite(m["grad_norm"]) and m["grad_norm"] > 0
    assert (result.final_model / "tokenizer_config.json").is_file()
