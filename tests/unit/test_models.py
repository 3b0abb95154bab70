"""Model/tokenizer plumbing that needs no real weights."""

from __future__ import annotations

import pytest
from smoke_config import model_config

from pipeline.modeling.models import (
    chat_prompt_ids,
    embedded_gguf_path,
    one_gguf_parse,
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


def _tiny_gguf(path) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.name", path.stem)
    writer.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_one_gguf_parse_shares_a_reader_per_file_inside_the_block(tmp_path) -> None:
    """dequantize_gguf's transformers loads each build a gguf.GGUFReader: inside the block the second
    one for a file is the first (parsed once), another file gets its own, and outside nothing changes."""
    import gguf

    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    _tiny_gguf(a)
    _tiny_gguf(b)
    real = gguf.GGUFReader
    with one_gguf_parse():
        first = gguf.GGUFReader(a)
        assert gguf.GGUFReader(str(a)) is first
        other = gguf.GGUFReader(b)
        assert other is not first and other.fields["general.name"].contents() == "b"
        assert first.tensors[0].data.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert gguf.GGUFReader is real
    assert real(a) is not real(a)


def test_one_gguf_parse_builds_a_name_map_once_per_architecture_and_depth() -> None:
    """transformers' weight mapping asks gguf for the same TensorNameMap at every submodule: inside the
    block one map per (architecture, layer count) serves every call, with the same names."""
    import gguf

    real = gguf.get_tensor_name_map
    llama = gguf.MODEL_ARCH.LLAMA
    with one_gguf_parse():
        first = gguf.get_tensor_name_map(llama, 2)
        assert gguf.get_tensor_name_map(llama, 2) is first
        deeper = gguf.get_tensor_name_map(llama, 3)
        assert deeper is not first
        assert deeper.get_name("model.layers.2.self_attn.q_proj") == "blk.2.attn_q"
        assert first.get_name("model.layers.2.self_attn.q_proj") is None  # only 2 blocks
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, 2) is not first
    assert gguf.get_tensor_name_map is real
    assert real(llama, 2) is not real(llama, 2)
