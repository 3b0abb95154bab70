"""The copy-free GQA attention equals transformers' eager attention (an independent path), in float64."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pipeline.modeling.attention import GQA_SDPA, use_gqa_attention


def _gqa_model(impl: str) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped: 2 query heads per K/V head
        max_position_embeddings=128,
        attn_implementation=impl,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(torch.float64).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(3, 64, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding of different lengths
    mask[1, :1] = 0
    return ids, mask


def test_padded_batch_equals_each_sequence_alone_under_eager_attention() -> None:
    """Reference: every sequence run alone, unpadded, through transformers' eager attention."""
    ids, mask = _batch()
    eager, gqa = _gqa_model("eager"), use_gqa_attention(_gqa_model("sdpa"))
    assert gqa.config._attn_implementation == GQA_SDPA
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = gqa(input_ids=ids, attention_mask=mask, position_ids=positions).logits  # [B, T, V]
    loss = out[mask.bool()].square().sum()
    loss.backward()
    ref_loss = torch.zeros((), dtype=torch.float64)
    for i in range(len(ids)):
        alone = ids[i][mask[i].bool()].unsqueeze(0)
        ref = eager(input_ids=alone).logits[0]  # [T_i, V]
        # eager takes its softmax in float32: agreement to ~1e-8, not float64 round-off
        assert torch.allclose(out[i][mask[i].bool()], ref, rtol=1e-6, atol=1e-7)
        ref_loss = ref_loss + ref.square().sum()
    ref_loss.backward()
    for (name, pe), (_, pg) in zip(eager.named_parameters(), gqa.named_parameters(), strict=True):
        assert torch.allclose(pg.grad, pe.grad, rtol=1e-5, atol=1e-5), name


def test_greedy_generation_of_a_padded_batch_matches_each_sequence_alone() -> None:
    ids, mask = _batch()
    kw = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0, "eos_token_id": None}
    batch = use_gqa_attention(_gqa_model("sdpa")).generate(input_ids=ids, attention_mask=mask, **kw)
    eager = _gqa_model("eager")
    for i in range(len(ids)):
        alone = eager.generate(input_ids=ids[i][mask[i].bool()].unsqueeze(0), **kw)[0]
        assert torch.equal(batch[i, -6:], alone[-6:])


def test_other_implementations_are_left_alone() -> None:
    assert use_gqa_attention(_gqa_model("eager")).config._attn_implementation == "eager"
