"""vLLM vs HF on one GPU: same greedy tokens, close log-probs, and weights that follow the policy.

Needs CUDA and vllm (`pip install -e '.[gpu]'`); skipped otherwise. The model is a small random
Llama (head_dim 64, which every vLLM attention backend supports) with a sharpened output layer, so
greedy choices are rarely near-ties; INTUITOR_VLLM_TEST_MODEL=<folder> runs it on a real model.
Greedy tokens must agree; they may differ only where HF's own top-2 logit margin is below
TIE_MARGIN (bf16 kernels may legitimately pick the other token there), and at least half the
compared budget must agree, so the test cannot pass vacuously.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from pipeline.config import SamplingConfig
from pipeline.rl.batch import collate_groups
from pipeline.rl.scoring import score_completions
from pipeline.types import RolloutGroup

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (gpu extra)"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

MAX_NEW_TOKENS = 32
# First N completion tokens that must agree between the engines.
COMPARED_TOKENS = 24
# HF logit margin (top-1 minus top-2) below which bf16 kernels may choose either token: logits
# reach ~30 here, where one bf16 step is 0.125-0.25.
TIE_MARGIN = 0.5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    if os.environ.get("INTUITOR_VLLM_TEST_MODEL"):
        return os.environ["INTUITOR_VLLM_TEST_MODEL"]
    from transformers import LlamaConfig, LlamaForCausalLM

    from pipeline.modeling.models import save_atomically, tiny_tokenizer

    config = LlamaConfig(
        vocab_size=259,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(50.0)  # logits std ~10: peaked distributions, few greedy near-ties
    out = Path(tmp_path_factory.mktemp("vllm_model")) / "tiny-llama"
    return str(save_atomically(out, model.to(torch.bfloat16), tiny_tokenizer()))


@pytest.fixture(scope="module")
def policy_and_tokenizer(model_dir):
    from smoke_config import model_config

    from pipeline.modeling.models import load_model_and_tokenizer

    return load_model_and_tokenizer(model_config(name_or_path=model_dir, dtype="bfloat16"), "cuda")


@pytest.fixture(scope="module")
def engine(model_dir, policy_and_tokenizer):
    from pipeline.rollout.vllm import VLLMRolloutEngine

    policy, tokenizer = policy_and_tokenizer
    return VLLMRolloutEngine(
        model_dir,
        tokenizer,
        policy=policy,
        dtype="bfloat16",
        gpu_memory_utilization=0.3,
        enable_sleep_mode=True,
        max_model_len=512,
        show_progress=False,
        llm_kwargs={"enforce_eager": True},
    )


@pytest.fixture
def prompts(toy_prompts):
    return toy_prompts[:6]


@torch.no_grad()
def hf_margins(policy, group: RolloutGroup, j: int) -> torch.Tensor:
    """[n] top-1 minus top-2 logit of HF's greedy choice at each position of its completion j."""
    n = int(group.completion_mask[j].sum())
    seq = torch.cat([group.prompt_ids, group.completion_ids[j, :n]]).cuda()
    logits = policy(input_ids=seq[None]).logits[0].float()  # [P + n, V]
    p = len(group.prompt_ids)
    top2 = logits[p - 1 : p - 1 + n].topk(2, dim=-1).values  # [n, 2]
    return (top2[:, 0] - top2[:, 1]).cpu()


def assert_same_greedy_tokens(policy, hf_groups, vllm_groups) -> None:
    """The first COMPARED_TOKENS tokens agree; a difference is allowed only at a near-tie of HF's
    (bf16 kernels may pick the other token there), and comparison stops at it."""
    compared = 0
    for h, v in zip(hf_groups, vllm_groups, strict=True):
        assert torch.equal(h.prompt_ids, v.prompt_ids)
        for j in range(h.group_size):
            hr = h.completion_ids[j, : int(h.completion_mask[j].sum())].tolist()[:COMPARED_TOKENS]
            vr = v.completion_ids[j, : int(v.completion_mask[j].sum())].tolist()[:COMPARED_TOKENS]
            k = next(
                (t for t, (a, b) in enumerate(zip(hr, vr, strict=False)) if a != b), min(len(hr), len(vr))
            )
            if k < max(len(hr), len(vr)):
                margin = float(hf_margins(policy, h, j)[k]) if k < len(hr) else 0.0
                assert margin < TIE_MARGIN, f"{h.prompt.id}: differs at token {k}, HF margin {margin:.3f}"
            compared += k
    budget = len(hf_groups) * hf_groups[0].group_size * min(COMPARED_TOKENS, MAX_NEW_TOKENS)
    assert compared >= budget // 2, f"only {compared} of {budget} tokens agreed before a near-tie"


def test_greedy_tokens_match_hf(engine, policy_and_tokenizer, prompts) -> None:
    from pipeline.rollout.hf import HFRolloutEngine

    policy, tokenizer = policy_and_tokenizer
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    hf = HFRolloutEngine(policy, tokenizer, show_progress=False)
    vllm_groups = engine.generate(prompts, 1, greedy, seed=0)
    assert_same_greedy_tokens(policy, hf.generate(prompts, 1, greedy, seed=0), vllm_groups)
    assert all(g.completion_ids.dtype == torch.long and g.self_certainty is None for g in vllm_groups)


def test_vllm_logprobs_match_the_scoring_pass(engine, policy_and_tokenizer, prompts) -> None:
    from vllm import SamplingParams

    from pipeline.modeling.models import prompt_ids
    from pipeline.rollout.vllm import outputs_to_groups

    policy, tokenizer = policy_and_tokenizer
    engine.sync_weights(policy)
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    params = SamplingParams(
        temperature=0.0, max_tokens=MAX_NEW_TOKENS, logprobs=0, stop_token_ids=engine.eos_ids, top_k=-1
    )
    # The engine's generate does not return log-probs (the trainer rescores): ask vLLM directly,
    # with the engine awake for this call.
    engine._wake(["weights", "kv_cache"])
    try:
        outputs = engine.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
    finally:
        engine._sleep()
    groups = outputs_to_groups(
        prompts, ids, outputs, 1, tokenizer=tokenizer, pad_id=engine.pad_id, eos_ids=engine.eos_ids
    )
    batch = collate_groups(groups, engine.pad_id)
    with torch.no_grad():
        scores = score_completions(
            policy,
            batch.input_ids.cuda(),
            batch.attention_mask.cuda(),
            batch.prompt_length,
            batch.completion_mask.cuda(),
        )
    for i, out in enumerate(outputs):
        sample = out.outputs[0]
        n = int(batch.completion_mask[i].sum())
        # Logprob of each sampled token (vLLM default: raw logits, like the unscaled scoring pass).
        vllm_lp = torch.tensor(
            [lp[t].logprob for t, lp in zip(sample.token_ids[:n], sample.logprobs, strict=False)]
        )
        torch.testing.assert_close(vllm_lp, scores.logprobs[i, :n].cpu(), atol=5e-2, rtol=5e-2)


def test_weights_follow_the_policy(engine, policy_and_tokenizer, prompts) -> None:
    from pipeline.rollout.hf import HFRolloutEngine

    policy, tokenizer = policy_and_tokenizer
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    before = engine.generate(prompts, 1, greedy, seed=0)
    saved = {n: p.detach().clone() for n, p in policy.named_parameters()}
    try:
        with torch.no_grad():  # an optimizer-like in-place update, large enough to change the argmax
            g = torch.Generator(device="cuda").manual_seed(1)
            for p in policy.parameters():
                p.add_(
                    torch.randn(p.shape, generator=g, device="cuda", dtype=p.dtype)
                    * p.float().std().to(p.dtype)
                )
        after = engine.generate(prompts, 1, greedy, seed=0)
        hf_after = HFRolloutEngine(policy, tokenizer, show_progress=False).generate(
            prompts, 1, greedy, seed=0
        )
        assert_same_greedy_tokens(policy, hf_after, after)
        assert any(
            not torch.equal(a.completion_ids, b.completion_ids) for a, b in zip(after, before, strict=True)
        )
    finally:
        with torch.no_grad():
            for n, p in policy.named_parameters():
                p.copy_(saved[n])
    # Restored policy, restored outputs: the engine keeps no stale weights of its own.
    again = engine.generate(prompts, 1, greedy, seed=0)
    assert all(torch.equal(a.completion_ids, b.completion_ids) for a, b in zip(again, before, strict=True))
