"""Scoring pass vs an independent float64 brute force over the full (unchunked) logits."""

from __future__ import annotations

import pytest
import torch

from pipeline.models import tiny_random_model
from pipeline.rl.scoring import masked_sequence_mean, position_ids_from_mask, score_completions


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
    """Chunked + checkpointed log-probs give the same gradient as the plain full-logits version."""
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
