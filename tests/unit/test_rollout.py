"""HF rollout engine: masks from the first EOS, seeded determinism, and collation alignment."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import SamplingConfig
from pipeline.rl.batch import collate_groups, recorded_scores
from pipeline.rl.scoring import score_completions
from pipeline.rollout.base import completion_mask
from pipeline.rollout.hf import HFRolloutEngine, left_pad


def test_completion_mask_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 5, (50, 9), generator=g)  # tokens 2 and 4 are EOS below
    mask = completion_mask(ids, [2, 4])
    for row, m in zip(ids.tolist(), mask.tolist(), strict=True):
        first = next((i for i, t in enumerate(row) if t in (2, 4)), None)
        expected = [1] * len(row) if first is None else [1] * (first + 1) + [0] * (len(row) - first - 1)
        assert m == expected


def test_left_pad() -> None:
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_generate_shapes_masks_and_seeds(tiny_model, tokenizer, toy_prompts) -> None:
    engine = HFRolloutEngine(tiny_model, tokenizer, show_progress=False)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=10, batch_size=5)
    groups = engine.generate(toy_prompts[:3], 4, sampling, seed=7)
    assert [g.prompt.id for g in groups] == [p.id for p in toy_prompts[:3]]
    for g in groups:
        assert g.completion_ids.shape[0] == 4 and g.completion_ids.shape[1] <= 10
        assert len(g.texts) == 4
        lengths = g.completion_mask.sum(-1)
        for row, n in zip(g.completion_ids, lengths, strict=True):
            eos_positions = (row[: int(n)] == tokenizer.eos_token_id).nonzero().flatten().tolist()
            # EOS, if present, is the last masked-in token and nowhere else
            assert eos_positions in ([], [int(n) - 1])
    again = engine.generate(toy_prompts[:3], 4, sampling, seed=7)
    other = engine.generate(toy_prompts[:3], 4, sampling, seed=8)
    assert all(torch.equal(a.completion_ids, b.completion_ids) for a, b in zip(groups, again, strict=True))
    assert any(
        a.completion_ids.shape != b.completion_ids.shape
        or not torch.equal(a.completion_ids, b.completion_ids)
        for a, b in zip(groups, other, strict=True)
    )


def test_eos_biased_model_stops_early(tiny_model, tokenizer, toy_prompts) -> None:
    with torch.no_grad():
        tiny_model.lm_head.weight[tokenizer.eos_token_id] += 5.0  # make EOS likely
    engine = HFRolloutEngine(tiny_model, tokenizer, show_progress=False)
    groups = engine.generate(toy_prompts[:2], 6, SamplingConfig(temperature=1.0, max_new_tokens=30), seed=0)
    lengths = torch.cat([g.completion_mask.sum(-1) for g in groups])
    assert lengths.min() < 30  # some completions ended with EOS
    for g in groups:
        for row, m in zip(g.completion_ids, g.completion_mask, strict=True):
            n = int(m.sum())
            if n < 30:
                assert int(row[n - 1]) == tokenizer.eos_token_id


def test_scoring_reproduces_generate_logprobs(tiny_model, tokenizer, toy_prompts) -> None:
    """The scoring pass over collated rollouts sees the same distributions `generate` sampled from."""
    engine = HFRolloutEngine(tiny_model, tokenizer, show_progress=False)
    prompts = toy_prompts[:3]  # different prompt lengths -> real left padding
    groups = engine.generate(prompts, 2, SamplingConfig(temperature=1.0, max_new_tokens=8), seed=3)
    batch = collate_groups(groups, tokenizer.pad_token_id)
    assert batch.input_ids.shape[1] == batch.prompt_length + batch.completion_mask.shape[1]
    scores = score_completions(
        tiny_model, batch.input_ids, batch.attention_mask, batch.prompt_length, batch.completion_mask
    )
    # Independent reference: each sequence alone (no padding at all), full logits, float64.
    for i, g in enumerate(x for x in groups for _ in range(2)):
        j = i % 2
        n = int(g.completion_mask[j].sum())
        seq = torch.cat([g.prompt_ids, g.completion_ids[j, :n]])[None]
        with torch.no_grad():
            logits = tiny_model(input_ids=seq).logits.double()[0]
        p = len(g.prompt_ids)
        ref = logits[p - 1 : p - 1 + n].log_softmax(-1).gather(-1, seq[0, p:, None]).squeeze(-1)
        torch.testing.assert_close(scores.logprobs[i, :n].double(), ref, rtol=1e-4, atol=1e-5)


def test_recorded_certainty_equals_scoring_pass(tiny_model, tokenizer, toy_prompts) -> None:
    """Self-certainty recorded during generation = the scoring pass's masked mean (raw logits)."""
    from pipeline.rl.scoring import masked_sequence_mean

    engine = HFRolloutEngine(tiny_model, tokenizer, show_progress=False, record_certainty=True)
    for temperature in (0.0, 0.7):  # greedy, and sampling (warpers must not leak into the record)
        groups = engine.generate(
            toy_prompts[:3], 2, SamplingConfig(temperature=temperature, max_new_tokens=9), 1
        )
        batch = collate_groups(groups, tokenizer.pad_token_id)
        s = score_completions(
            tiny_model, batch.input_ids, batch.attention_mask, batch.prompt_length, batch.completion_mask
        )
        expected = masked_sequence_mean(s.self_certainty, batch.completion_mask)
        recorded = torch.cat([g.self_certainty for g in groups]).float()
        torch.testing.assert_close(recorded, expected, rtol=1e-4, atol=1e-7)


def test_cpu_rollout_leaves_bf16_autocast(tiny_model, tokenizer, toy_prompts) -> None:
    """Under the trainer's bf16 autocast the CPU rollout runs in the weights' precision: the same
    tokens and recorded self-certainty, bit for bit, as without autocast."""
    engine = HFRolloutEngine(tiny_model, tokenizer, show_progress=False, record_token_scores=True)
    sampling = SamplingConfig(temperature=0.7, max_new_tokens=9)
    plain = engine.generate(toy_prompts[:3], 2, sampling, 5)
    with torch.autocast("cpu", torch.bfloat16):
        mixed = engine.generate(toy_prompts[:3], 2, sampling, 5)
        assert torch.is_autocast_enabled("cpu")  # restored for the scoring passes that follow
    for a, b in zip(plain, mixed, strict=True):
        assert torch.equal(a.completion_ids, b.completion_ids)
        assert torch.equal(a.token_scores[0], b.token_scores[0])


@pytest.mark.parametrize("certainty_temperature", [1.0, 0.7])
def test_recorded_token_scores_equal_scoring_pass(
    tiny_model, tokenizer, toy_prompts, certainty_temperature
) -> None:
    """Per-token self-certainty and entropy recorded from generate's logits = the scoring pass's."""
    engine = HFRolloutEngine(
        tiny_model,
        tokenizer,
        show_progress=False,
        record_token_scores=True,
        certainty_temperature=certainty_temperature,
    )
    groups = engine.generate(toy_prompts[:3], 3, SamplingConfig(temperature=0.9, max_new_tokens=9), 4)
    batch = collate_groups(groups, tokenizer.pad_token_id)
    s = score_completions(
        tiny_model,
        batch.input_ids,
        batch.attention_mask,
        batch.prompt_length,
        batch.completion_mask,
        certainty_temperature=certainty_temperature,
    )
    recorded = recorded_scores(batch)
    assert recorded is not None and recorded.logprobs is None
    assert batch.completion_mask.sum() > batch.completion_mask.shape[0]  # more than one token each
    torch.testing.assert_close(recorded.self_certainty, s.self_certainty, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(recorded.entropy, s.entropy, rtol=1e-4, atol=1e-6)
    # an engine that does not record leaves the scoring pass to the trainer
    plain = HFRolloutEngine(tiny_model, tokenizer, show_progress=False)
    groups = plain.generate(toy_prompts[:1], 2, SamplingConfig(temperature=0.9, max_new_tokens=4), 4)
    assert recorded_scores(collate_groups(groups, tokenizer.pad_token_id)) is None


def test_one_prefill_per_prompt_samples_the_same(tiny_model, tokenizer, toy_prompts) -> None:
    """A group's rows share one prefill of their prompt; the samples are those of per-row prefills."""
    calls: list[tuple[int, ...]] = []
    hook = tiny_model.get_decoder().register_forward_pre_hook(
        lambda _m, _a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        runs = {}
        for share in (True, False):
            engine = HFRolloutEngine(tiny_model, tokenizer, show_progress=False, record_token_scores=True)
            if not share:
                engine._prefill_shared = lambda *_a: None
            calls.clear()
            sampling = SamplingConfig(temperature=0.9, max_new_tokens=7, batch_size=12)
            runs[share] = (engine.generate(toy_prompts[:3], 4, sampling, 5), list(calls))
    finally:
        hook.remove()
    (shared, shared_calls), (plain, plain_calls) = runs[True], runs[False]
    # shared: 3 prompts (minus their last token) once, then 12 rows from the last prompt token on
    assert shared_calls[0][0] == 3 and shared_calls[1] == (12, 1)
    assert plain_calls[0][0] == 12 and plain_calls[0][1] == shared_calls[0][1] + 1
    for a, b in zip(shared, plain, strict=True):
        assert torch.equal(a.completion_ids, b.completion_ids) and a.texts == b.texts
        torch.testing.assert_close(a.token_scores[0], b.token_scores[0], rtol=1e-5, atol=1e-6)


def test_each_batch_gets_a_cache_sized_to_itself(tokenizer, toy_prompts) -> None:
    """generate's own static cache is as long as the longest any earlier call of the process needed
    (transformers keeps `_previous_max_cache_length`): a batch's attention width, and so its rounding
    and its cost, would depend on what ran before it (a resumed evaluation is a fresh process)."""
    from pipeline.data.prompts import chat_messages
    from pipeline.modeling.models import tiny_random_model
    from pipeline.types import Prompt

    model = tiny_random_model(seed=5)
    engine = HFRolloutEngine(model, tokenizer, show_progress=False, record_certainty=True)
    sizes: list[int] = []
    generate = model.generate

    def spy(**kwargs):
        out = generate(**kwargs)
        sizes.append(kwargs["past_key_values"].layers[0].max_cache_len)
        return out

    model.generate = spy
    long = [Prompt(id="long", messages=chat_messages("What is " + "1 + " * 60 + "1?", "Box it."))]
    engine.generate(long, 1, SamplingConfig(temperature=0.0, max_new_tokens=40), seed=0)
    after_long = engine.generate(
        toy_prompts[:3], 1, SamplingConfig(temperature=0.0, max_new_tokens=12), seed=0
    )
    width = max(len(g.prompt_ids) for g in after_long)
    assert sizes[1] == width + 12 < sizes[0]


def test_generation_config_processors_are_off(tokenizer, toy_prompts) -> None:
    """A model whose generation_config sets repetition_penalty, suppress_tokens, min_new_tokens and
    no_repeat_ngram_size samples exactly as the plain model, and its recorded self-certainty (finite:
    no -inf from a suppressed token) equals the scoring pass's on the raw logits."""
    from pipeline.modeling.models import tiny_random_model

    plain, altered = tiny_random_model(seed=3), tiny_random_model(seed=3)
    sampling = SamplingConfig(temperature=0.9, max_new_tokens=10)
    runs = {}
    for name, model in (("plain", plain), ("altered", altered)):
        if name == "altered":
            gc = model.generation_config
            gc.repetition_penalty, gc.no_repeat_ngram_size, gc.min_new_tokens = 1.05, 2, 6
            gc.suppress_tokens = list(range(40, 120))  # common byte tokens of the tiny tokenizer
        engine = HFRolloutEngine(model, tokenizer, show_progress=False, record_token_scores=True)
        runs[name] = engine.generate(toy_prompts[:3], 3, sampling, seed=2)
    assert altered.generation_config.repetition_penalty == 1.05  # the model's own config is kept
    for a, b in zip(runs["plain"], runs["altered"], strict=True):
        assert torch.equal(a.completion_ids, b.completion_ids)
    batch = collate_groups(runs["altered"], tokenizer.pad_token_id)
    s = score_completions(
        altered, batch.input_ids, batch.attention_mask, batch.prompt_length, batch.completion_mask
    )
    recorded = recorded_scores(batch)
    assert recorded is not None and torch.isfinite(recorded.self_certainty).all()
    torch.testing.assert_close(recorded.self_certainty, s.self_certainty, rtol=1e-4, atol=1e-6)
    # the sampled tokens include ones the config would have suppressed: its processors never ran
    assert ((batch.completion_ids >= 40) & (batch.completion_ids < 120)).any()


def test_greedy_evaluation_ignores_generation_config(tokenizer, toy_prompts) -> None:
    from pipeline.modeling.models import tiny_random_model

    plain, altered = tiny_random_model(seed=4), tiny_random_model(seed=4)
    altered.generation_config.repetition_penalty = 1.3
    altered.generation_config.bad_words_ids = [[50], [60]]
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=12)
    out = [
        HFRolloutEngine(m, tokenizer, show_progress=False, record_certainty=True).generate(
            toy_prompts[:2], 1, greedy, seed=0
        )
        for m in (plain, altered)
    ]
    for a, b in zip(*out, strict=True):
        assert torch.equal(a.completion_ids, b.completion_ids)
        torch.testing.assert_close(a.self_certainty, b.self_certainty)


def test_altering_generation_fields_are_named() -> None:
    from transformers import GenerationConfig

    from pipeline.rollout.hf import altering_generation_fields

    assert altering_generation_fields(GenerationConfig(eos_token_id=2, pad_token_id=2)) == {}
    gc = GenerationConfig(repetition_penalty=1.05, suppress_tokens=[3], top_k=20, min_new_tokens=1)
    assert altering_generation_fields(gc) == {
        "repetition_penalty": 1.05,
        "suppress_tokens": [3],
        "top_k": 20,
        "min_new_tokens": 1,
    }
