"""Model/tokenizer plumbing that needs no real weights."""

from __future__ import annotations

import pytest
from smoke_config import model_config

from pipeline.modeling.models import (
    chat_prompt_ids,
    embedded_gguf_path,
    resolve_model_path,
    tiny_random_model,
)


def test_tiny_tokenizer_round_trip_and_chat_template(tokenizer) -> None:
    text = "héllo wörld 1+1=2 \\boxed{3}"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    ids = chat_prompt_ids(tokenizer, [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}])
    assert (
        tokenizer.decode(ids)
        == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 2


def test_tiny_model_is_seeded_and_sized() -> None:
    a, b = tiny_random_model(seed=1), tiny_random_model(seed=1)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert a.get_output_embeddings().weight.shape == (259, 32)
    c = tiny_random_model(seed=2)
    assert any((p != q).any() for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_embedded_gguf_is_found_without_importing_the_package() -> None:
    path = embedded_gguf_path("smollm2-135m-instruct")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(ValueError, match="unknown embedded model"):
        embedded_gguf_path("gpt-5")


def test_local_and_hub_paths_pass_through(tmp_path) -> None:
    assert resolve_model_path(model_config(name_or_path=str(tmp_path))) == str(tmp_path)
    assert (
        resolve_model_path(model_config(name_or_path="Qwen/Qwen2.5-3B", revision="abc")) == "Qwen/Qwen2.5-3B"
    )
