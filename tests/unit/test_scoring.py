"""Scoring pass vs an independent float64 brute force over the full (unchunked) logits."""

from __future__ import annotations

import pytest
import torch

from pipeline.modeling.models import tiny_random_model
from pipeline.modeling.prompt_cache import position_ids_from_mask, shared_prompts
from pipeline.rl.scoring import masked_sequence_mean, score_completions


def _batch(vocab: int, n: int = 4, p: int = 5, c: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, p + c), generator=g)
    attn = torch.ones(n, p + c, dtype=torch.long)
    attn[0, :2] = 0  # left-padded prompts of different lengths
    attn[1, :1] = 0
    cmask = torch.ones(n, c)
    cmask[0, 3:] = 0  # ragged completions
    cmask[2, 1:] = 0  # a one-token completion
    attn[:, p:] = cmask.long()
    return ids, attn, cmask, p


def _brute_force(model, ids, attn, p, temp_lp=1.0, temp_sc=1.0):
    """Per-token log-prob, KL(U||p) and entropy from the full logits, all in float64."""
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn)).logits
    logits = logits.double()[:, p - 1 : -1]  # column j predicts token j + 1
    vocab = logits.shape[-1]
    tokens = ids[:, p:]
    logp = (logits / temp_lp).log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    probs = (logits / temp_sc).softmax(-1)
    kl = (1.0 / vocab * torch.log((1.0 / vocab) / probs)).sum(-1)
    entropy = -(probs * probs.log()).sum(-1)
    return logp, kl, entropy


@pytest.mark.parametrize("vocab", [259, 4099, 151_936])
@pytest.mark.parametrize("chunk", [1, 5, 256])
def test_matches_float64_brute_force(vocab: int, chunk: int) -> None:
    model = tiny_random_model(vocab_size=vocab, hidden_size=16, num_layers=1, num_heads=2, seed=vocab)
    ids, attn, cmask, p = _batch(vocab)
    scores = score_completions(model, ids, attn, p, cmask, chunk_tokens=chunk)
    logp, kl, ent = _brute_force(model, ids, attn, p)
    m = cmask.bool()
    # A random model is near-uniform: KL is ~1e-4, the hard case for cancellation.
    torch.testing.assert_close(scores.self_certainty.double()[m], kl[m], rtol=1e-5, atol=0)
    torch.testing.assert_close(scores.logprobs.double()[m], logp[m], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scores.entropy.double()[m], ent[m], rtol=1e-5, atol=0)
    for t in (scores.logprobs, scores.self_certainty, scores.entropy):
        assert torch.all(t[~m] == 0)


def test_peaked_distribution_and_temperatures() -> None:
    """Sharper logits (large SC) and the temperature flags follow their brute force."""
    model = tiny_random_model(vocab_size=1000, hidden_size=16, num_layers=1, num_heads=2, seed=3)
    with torch.no_grad():
        model.lm_head.weight.mul_(200.0)  # logits of a confident model
    ids, attn, cmask, p = _batch(1000, seed=1)
    scores = score_completions(
        model, ids, attn, p, cmask, chunk_tokens=3, logprob_temperature=0.7, certainty_temperature=0.9
    )
    logp, kl, ent = _brute_force(model, ids, attn, p, temp_lp=0.7, temp_sc=0.9)
    m = cmask.bool()
    assert kl[m].min() > 0.5
    torch.testing.assert_close(scores.self_certainty.double()[m], kl[m], rtol=1e-5, atol=0)
    torch.testing.assert_close(scores.logprobs.double()[m], logp[m], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores.entropy.double()[m], ent[m], rtol=1e-4, atol=1e-6)


def test_left_padding_does_not_change_scores() -> None:
    model = tiny_random_model(seed=5)
    ids, attn, cmask, p = _batch(259, seed=2)
    full = score_completions(model, ids, attn, p, cmask)
    # Row 0 alone, without its two pad columns.
    row = score_completions(model, ids[:1, 2:], attn[:1, 2:], p - 2, cmask[:1])
    torch.testing.assert_close(full.logprobs[0], row.logprobs[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(full.self_certainty[0], row.self_certainty[0], rtol=1e-5, atol=1e-7)


def test_gradients_match_full_logits() -> None:
    """Chunked log-probs (hand-written head backward) give the same gradient as the full-logits version."""
    model = tiny_random_model(seed=7)
    ids, attn, cmask, p = _batch(259, seed=4)
    scores = score_completions(
        model, ids, attn, p, cmask, chunk_tokens=4, with_grad=True, with_certainty=False
    )
    assert scores.logprobs.requires_grad
    (scores.logprobs * cmask).sum().backward()
    chunked = {n: q.grad.clone() for n, q in model.named_parameters()}
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn)).logits
    logp = logits[:, p - 1 : -1].log_softmax(-1).gather(-1, ids[:, p:, None]).squeeze(-1)
    (logp * cmask).sum().backward()
    for n, q in model.named_parameters():
        torch.testing.assert_close(chunked[n], q.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_masked_sequence_mean() -> None:
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    m = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    assert masked_sequence_mean(v, m).tolist() == [1.5, 5.0, 0.0]


def _grouped_batch(vocab: int, groups: int = 3, g: int = 4, p: int = 6, c: int = 5, seed: int = 0):
    """`groups` prompts of different lengths (left-padded), each over `g` rows; ragged completions."""
    gen = torch.Generator().manual_seed(seed)
    n = groups * g
    ids = torch.randint(3, vocab, (n, p + c), generator=gen)
    attn = torch.ones(n, p + c, dtype=torch.long)
    for k in range(groups):
        rows = slice(k * g, (k + 1) * g)
        ids[rows, :p] = torch.randint(3, vocab, (p,), generator=gen)
        attn[rows, : k + 1] = 0  # prompt k has k + 1 pad columns (every row has at least one)
        ids[rows, : k + 1] = 0
    cmask = (torch.rand(n, c, generator=gen) < 0.9).float().cumprod(-1)
    cmask[:, 0] = 1
    attn[:, p:] = cmask.long()
    return ids, attn, cmask, p


def test_shared_prompts_numbers_prompts_by_first_row() -> None:
    ids, attn, _, p = _grouped_batch(259, groups=3, g=2)
    order = torch.tensor([4, 0, 5, 1, 2, 3])  # rows interleaved: prompt 2 first
    first, inverse = shared_prompts(ids[order], attn[order], p)
    assert first.tolist() == [0, 1, 4]
    assert inverse.tolist() == [0, 1, 0, 1, 2, 2]


@pytest.mark.parametrize("with_grad", [False, True])
def test_shared_prompt_pass_matches_float64_brute_force(with_grad: bool) -> None:
    """Each prompt run once (its cache copied to its rows) = every row run in full, scores and gradients."""
    model = tiny_random_model(seed=11).double()
    ids, attn, cmask, p = _grouped_batch(259, seed=3)
    shared = score_completions(model, ids, attn, p, cmask, chunk_tokens=7, with_grad=with_grad)
    logp, kl, entropy = _brute_force(model, ids, attn, p)
    m = cmask.bool()
    torch.testing.assert_close(shared.logprobs[m].double(), logp[m], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(shared.self_certainty[m].double(), kl[m], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(shared.entropy[m].double(), entropy[m], rtol=1e-6, atol=1e-6)
    if not with_grad:
        return
    (shared.logprobs * cmask).sum().backward()
    grads = {n: q.grad.clone() for n, q in model.named_parameters()}
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn)).logits
    full = logits[:, p - 1 : -1].log_softmax(-1).gather(-1, ids[:, p:, None]).squeeze(-1)
    (full * cmask).sum().backward()
    for n, q in model.named_parameters():
        torch.testing.assert_close(grads[n], q.grad, rtol=1e-5, atol=1e-7, msg=lambda m, n=n: f"{n}: {m}")


def test_shared_prompt_pass_runs_each_prompt_once() -> None:
    model = tiny_random_model(seed=11)
    ids, attn, cmask, p = _grouped_batch(259, groups=2, g=4, p=6, c=5)
    seen: list[tuple[int, ...]] = []
    hook = model.get_decoder().register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    score_completions(model, ids, attn, p, cmask)
    hook.remove()
    # 2 prompts (the all-padding first column trimmed), then the 8 rows' completions on their caches.
    assert seen == [(2, 5), (8, 5)]
    seen.clear()
    hook = model.get_decoder().register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    score_completions(model, ids, attn, p, cmask, share_prompts=False)
    assert seen == [(8, 11)]
