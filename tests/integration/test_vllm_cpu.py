"""The real vLLM engine on CPU (vllm-cpu, `make setup-vllm`) against the HF engine and the scoring pass.

Skipped unless vllm-cpu is installed. The model is the tiny random Llama widened to head size 32 (the
builtin test model's 8 has no vLLM-CPU attention kernel) with a sharpened output layer, so greedy
choices are rarely near-ties: in fp32 vLLM and HF then pick the same tokens (measured: all of them),
and the tests ask for exactly that. Each test builds on one engine (about 6 s to start, eager mode).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from smoke_config import benchmark_config, model_config

from pipeline.config import SamplingConfig
from pipeline.modeling.models import (
    load_model_and_tokenizer,
    save_atomically,
    tiny_random_model,
    tiny_tokenizer,
)
from pipeline.rl.batch import collate_groups
from pipeline.rl.scoring import CompletionScorer
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.types import RolloutGroup


def _vllm_cpu_reason() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (make setup-vllm)"
    from pipeline.rollout.vllm_runtime import vllm_unavailable_reason

    return vllm_unavailable_reason("cpu")


_REASON = _vllm_cpu_reason()
pytestmark = [
    pytest.mark.vllm,
    pytest.mark.integration,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]

MAX_NEW_TOKENS = 24
# Log-prob agreement of vLLM's sampled tokens with the scoring pass, both fp32 (measured max |diff|
# on these prompts: ~1e-5; kernels differ in accumulation order only).
LOGPROB_ATOL = 1e-3


def tiny_llama(seed: int = 0) -> torch.nn.Module:
    model = tiny_random_model(hidden_size=64, num_heads=2, seed=seed)  # head size 32
    with torch.no_grad():
        model.lm_head.weight.mul_(50.0)  # peaked distributions: few greedy near-ties
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    out = Path(tmp_path_factory.mktemp("vllm_cpu")) / "tiny-llama"
    return str(save_atomically(out, tiny_llama(), tiny_tokenizer()))


@pytest.fixture(scope="module")
def policy_and_tokenizer(model_dir):
    return load_model_and_tokenizer(model_config(name_or_path=model_dir, system_prompt=None), "cpu")


def _fp32_engine(model_dir: str, policy_and_tokenizer, llm_kwargs: dict, **options):
    """A fp32 engine on the tiny Llama, eager (no torch.compile: seconds to start instead of ~20).

    The engine fills in torch.distributed's and vLLM's variables (RANK, MASTER_PORT it then holds,
    OMP_NUM_THREADS, ...): later tests, and the processes they start, must not inherit them."""
    from pipeline.rollout.vllm import VLLMRolloutEngine

    policy, tokenizer = policy_and_tokenizer
    saved = dict(os.environ)
    yield VLLMRolloutEngine(
        model_dir,
        tokenizer,
        policy=policy,
        dtype="float32",
        max_model_len=512,
        kv_cache_gb=0.25,
        show_progress=False,
        llm_kwargs={"enforce_eager": True, **llm_kwargs},
        **options,
    )
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def engine(model_dir, policy_and_tokenizer):
    yield from _fp32_engine(model_dir, policy_and_tokenizer, {})


@pytest.fixture(scope="module")
def recording_engine(model_dir, policy_and_tokenizer, engine):
    """An evaluation engine (record_certainty, follow_policy=False) that prefills in chunks of 32
    tokens: the toy prompts have ~70, so most requests' first samples are drawn, discarded and drawn
    again, which the recorder must get right. Built after `engine`: a second engine in one process."""
    yield from _fp32_engine(
        model_dir,
        policy_and_tokenizer,
        {"enable_chunked_prefill": True, "max_num_batched_tokens": 32},
        max_num_seqs=8,
        follow_policy=False,
        record_certainty=True,
    )


@pytest.fixture
def prompts(toy_prompts):
    return toy_prompts[:6]


def completions(groups: list[RolloutGroup]) -> list[list[int]]:
    return [
        g.completion_ids[j, : int(g.completion_mask[j].sum())].tolist()
        for g in groups
        for j in range(g.group_size)
    ]


def test_greedy_tokens_equal_hf_in_fp32(engine, policy_and_tokenizer, prompts) -> None:
    policy, tokenizer = policy_and_tokenizer
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    hf = HFRolloutEngine(policy, tokenizer, show_progress=False).generate(prompts, 2, greedy, seed=0)
    got = engine.generate(prompts, 2, greedy, seed=0)
    assert completions(got) == completions(hf)
    for a, b in zip(got, hf, strict=True):
        assert torch.equal(a.prompt_ids, b.prompt_ids) and torch.equal(a.completion_mask, b.completion_mask)
        assert a.texts == b.texts


def test_sampled_logprobs_match_the_scoring_pass(engine, policy_and_tokenizer, prompts) -> None:
    from vllm import SamplingParams

    from pipeline.modeling.models import prompt_ids
    from pipeline.rollout.vllm import outputs_to_groups

    policy, tokenizer = policy_and_tokenizer
    engine.sync_weights(policy)
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    # T = 1: vLLM's returned log-probs are of the raw logits, as the unscaled scoring pass computes.
    params = [
        SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=MAX_NEW_TOKENS, seed=i, logprobs=0)
        for i in range(len(ids))
    ]
    outputs = engine.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
    groups = outputs_to_groups(
        prompts, ids, outputs, 1, tokenizer=tokenizer, pad_id=engine.pad_id, eos_ids=engine.eos_ids
    )
    batch = collate_groups(groups, engine.pad_id)
    with torch.no_grad():
        logprobs, _, _ = CompletionScorer(policy)(
            batch.input_ids, batch.attention_mask, batch.completion_mask, batch.prompt_length
        )
    worst = 0.0
    for i, out in enumerate(outputs):
        sample = out.outputs[0]
        n = int(batch.completion_mask[i].sum())
        vllm_lp = torch.tensor(
            [lp[t].logprob for t, lp in zip(sample.token_ids[:n], sample.logprobs, strict=True)]
        )
        worst = max(worst, float((vllm_lp - logprobs[i, :n]).abs().max()))
    print(f"max |vLLM - scoring pass| log-prob difference: {worst:.2e}")  # shown with pytest -s
    assert worst <= LOGPROB_ATOL, f"max |vLLM - scoring pass| log-prob difference {worst:.2e}"


def test_sync_after_an_optimizer_step_samples_the_new_weights(engine, policy_and_tokenizer, prompts) -> None:
    policy, tokenizer = policy_and_tokenizer
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    before = completions(engine.generate(prompts, 1, greedy, seed=0))
    saved = {n: p.detach().clone() for n, p in policy.named_parameters()}
    engine.policy = None  # no sync inside generate: only the explicit sync_weights below
    try:
        # One AdamW step with a large learning rate on a language-modelling loss: every weight moves.
        optimizer = torch.optim.AdamW(policy.parameters(), lr=0.05)
        text = torch.randint(3, 259, (4, 32), generator=torch.Generator().manual_seed(0))
        policy(input_ids=text, labels=text).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stale = completions(engine.generate(prompts, 1, greedy, seed=0))
        assert stale == before  # vLLM still holds the old weights until they are synced
        engine.sync_weights(policy)
        after = completions(engine.generate(prompts, 1, greedy, seed=0))
        hf_after = completions(
            HFRolloutEngine(policy, tokenizer, show_progress=False).generate(prompts, 1, greedy, 0)
        )
        assert after == hf_after
        assert after != before
    finally:
        engine.policy = policy
        with torch.no_grad():
            for n, p in policy.named_parameters():
                p.copy_(saved[n])
    # generate syncs from its policy: the restored weights give the first completions back.
    assert completions(engine.generate(prompts, 1, greedy, seed=0)) == before


@pytest.mark.parametrize("engine_name", ["engine", "recording_engine"])
def test_evaluation_with_vllm_equals_hf_in_fp32(
    engine_name, request, policy_and_tokenizer, toy_prompts
) -> None:
    """The evaluate stage with rollout=vllm: vLLM decodes greedily, and each answer's self-certainty
    comes from a scoring pass (`engine` records none) or from vLLM's own logits (`recording_engine`,
    the evaluation engine's setting). In fp32 both match the HF engine's evaluation."""
    from pipeline.eval.runner import evaluate_prompts

    engine = request.getfixturevalue(engine_name)
    policy, tokenizer = policy_and_tokenizer
    bench = benchmark_config("arith", max_new_tokens=MAX_NEW_TOKENS, batch_size=4)
    hf, hf_metrics = evaluate_prompts(policy, tokenizer, toy_prompts, bench, show_progress=False)
    got, metrics = evaluate_prompts(policy, tokenizer, toy_prompts, bench, show_progress=False, engine=engine)
    keys = ("id", "completion", "extracted", "correct", "length", "clipped")
    assert [{k: r[k] for k in keys} for r in got] == [{k: r[k] for k in keys} for r in hf]
    for a, b in zip(got, hf, strict=True):
        assert a["self_certainty"] == pytest.approx(b["self_certainty"], rel=1e-4)
    assert metrics["self_certainty_mean"] == pytest.approx(hf_metrics["self_certainty_mean"], rel=1e-4)


def _scored_certainty(policy, groups: list[RolloutGroup], pad_id: int) -> torch.Tensor:
    """[N] mean self-certainty of each completion from the scoring pass (fp32, raw logits)."""
    from pipeline.rl.scoring import masked_sequence_mean

    batch = collate_groups(groups, pad_id)
    with torch.no_grad():
        _, certainty, _ = CompletionScorer(policy)(
            batch.input_ids, batch.attention_mask, batch.completion_mask, batch.prompt_length
        )
    return masked_sequence_mean(certainty, batch.completion_mask).double()


def test_recorded_certainty_equals_the_scoring_pass(
    recording_engine, policy_and_tokenizer, toy_prompts
) -> None:
    """Greedy, prefilled in chunks: each completion's recorded mean certainty is the scoring pass's."""
    policy, tokenizer = policy_and_tokenizer
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    groups = recording_engine.generate(toy_prompts, 2, greedy, seed=0)
    assert min(len(g.prompt_ids) for g in groups) > 32  # every prefill took more than one step
    recorded = torch.cat([g.self_certainty for g in groups])
    scored = _scored_certainty(policy, groups, recording_engine.pad_id)
    print(f"max |recorded - scored| certainty: {float((recorded - scored).abs().max()):.2e}")
    torch.testing.assert_close(recorded, scored, rtol=1e-4, atol=1e-5)
    hf = HFRolloutEngine(policy, tokenizer, show_progress=False).generate(toy_prompts, 2, greedy, seed=0)
    assert completions(groups) == completions(hf)  # chunked prefill decodes the same tokens
    assert recording_engine.certainty_sink == {}  # every request's entry consumed


def test_recorded_certainty_reads_the_logits_before_temperature(
    recording_engine, policy_and_tokenizer, prompts
):
    """Sampled at T = 0.5: the recorder sees the raw logits (what the HF engine records and the
    unscaled scoring pass computes), not the tempered ones vLLM samples from."""
    from vllm import SamplingParams

    from pipeline.modeling.models import prompt_ids
    from pipeline.rollout.vllm import outputs_to_groups, with_recorded_certainty
    from pipeline.rollout.vllm_certainty import RECORD_KEY

    policy, tokenizer = policy_and_tokenizer
    engine = recording_engine
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    keys = [f"tempered:{i}" for i in range(len(ids))]
    # Unseeded: chunked prefill with seeded requests is what vllm-cpu refuses (CPU_ENGINE_ARGS).
    params = [
        SamplingParams(temperature=0.5, max_tokens=MAX_NEW_TOKENS, extra_args={RECORD_KEY: k}) for k in keys
    ]
    outputs = engine.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
    groups = outputs_to_groups(
        prompts, ids, outputs, 1, tokenizer=tokenizer, pad_id=engine.pad_id, eos_ids=engine.eos_ids
    )
    recorded = torch.cat(
        [g.self_certainty for g in with_recorded_certainty(groups, engine.certainty_sink, keys)]
    )
    torch.testing.assert_close(
        recorded, _scored_certainty(policy, groups, engine.pad_id), rtol=1e-4, atol=1e-5
    )


def test_seeded_sampling_beyond_one_prefill_step(engine, toy_prompts) -> None:
    """256 seeded requests of ~70 tokens overflow one step's 4096-token budget: with chunked prefill
    (vLLM's default) this raised "CPU Generator does not use offset" (see vllm_runtime.CPU_ENGINE_ARGS).
    A completion depends only on its seed, not on the batch, and reruns reproduce it."""
    from pipeline.data.prompts import chat_messages
    from pipeline.types import Prompt

    many = [
        Prompt(id=f"p{i}", messages=chat_messages(f"What is {i} + {i}?", "Put the answer in \\boxed{}."))
        for i in range(128)
    ]
    sampled = SamplingConfig(temperature=0.9, top_p=0.95, max_new_tokens=8)
    big = engine.generate(many, 2, sampled, seed=5)
    assert sum(len(g.prompt_ids) for g in big) * 2 > 4096
    assert completions(engine.generate(many[:4], 2, sampled, seed=5)) == completions(big[:4])
    assert completions(engine.generate(many, 2, sampled, seed=5)) == completions(big)
    assert completions(engine.generate(many, 2, sampled, seed=6)) != completions(big)


@pytest.mark.slow
def test_dvc_exp_run_smoke_with_vllm(tmp_path) -> None:
    """`dvc exp run -S experiment=smoke -S rollout=vllm` on CPU, in a scratch copy of the repo. The
    smoke experiment's builtin model has head size 8, which vLLM-CPU cannot run, so the same tiny Llama
    at head size 32 is the base model (a local folder that prepare_model copies)."""
    from scratch_repo import run_checked, scratch_pipeline

    model = save_atomically(tmp_path / "tiny-llama", tiny_llama(), tiny_tokenizer())
    path, env = scratch_pipeline(tmp_path / "repo")
    # An engine built earlier in this process set a world of one and holds its MASTER_PORT: the stages
    # must pick their own.
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    out = run_checked(
        [
            "dvc",
            "exp",
            "run",
            "-n",
            "smoke-vllm",
            *("-S", "experiment=smoke", "-S", "rollout=vllm", "-S", f"model.name_or_path={model}"),
            *("-S", "rollout.kv_cache_gb=0.25", "-S", "+rollout.llm_kwargs.enforce_eager=true"),
        ],
        path,
        env,
    )
    assert "Running stage 'train@intuitor'" in out
    for method in ("intuitor", "grpo", "grpo_pv"):
        metrics = json.loads((path / "results/train" / method / "metrics.json").read_text())
        assert metrics["steps"] == 2
    assert "engine: vllm" in (path / "params.yaml").read_text()
    for model in ("base", "intuitor", "grpo", "grpo_pv"):  # the evaluate stages decode with vLLM too
        metrics = json.loads((path / "results/eval" / model / "arith/metrics.json").read_text())
        assert metrics["engine"] == "vllm" and metrics["n"] == 6 and metrics["self_certainty_mean"] > 0
