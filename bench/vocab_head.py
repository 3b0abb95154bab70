"""The gradient pass's vocabulary head: pipeline.modeling.vocab_head vs the autograd formula it replaced.

Peer (measured in the same process, rounds alternating): per chunk, a no-grad projection for
self-certainty and entropy, and a checkpointed `gather - logsumexp` of autocast's projection for the
log-probs (three projections forward and recomputed, two in backward). Ours: one projection forward,
one recomputed in backward, the weight cast once per pass. Both under bf16 autocast (what the trainer
runs on a bf16 CPU) or fp32 (`--precision no`), on SmolLM2's head shape (V 49,152, H 576) with the
trainer's chunk of 256 tokens; prints s per pass (forward + backward over --tokens), the ratio per
round, and the gradients' agreement.

    python bench/vocab_head.py --tokens 1024 --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from pipeline.modeling.certainty import certainty_and_entropy
from pipeline.modeling.vocab_head import chunk_scores, compute_weight


def _peer_chunk_logprobs(h: torch.Tensor, w: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
    z = F.linear(h, w).float()  # [m, V]
    return z.gather(-1, tok[:, None]).squeeze(-1) - torch.logsumexp(z, dim=-1)


def peer_pass(hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor, chunk: int) -> torch.Tensor:
    out = []
    for s in range(0, hidden.shape[0], chunk):
        h, tok = hidden[s : s + chunk], tokens[s : s + chunk]
        out.append(checkpoint(_peer_chunk_logprobs, h, weight, tok, use_reentrant=False))
        with torch.no_grad():
            certainty_and_entropy(F.linear(h.detach(), weight.detach()).float())
    return torch.cat(out)


def our_pass(hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor, chunk: int) -> torch.Tensor:
    cast = compute_weight(weight)
    out = []
    for s in range(0, hidden.shape[0], chunk):
        lp, _, _ = chunk_scores(hidden[s : s + chunk], weight, None, cast, tokens[s : s + chunk], 1.0, 1.0)
        out.append(lp)
    return torch.cat(out)


def timed(fn, hidden, weight, tokens, chunk, precision) -> tuple[float, torch.Tensor, torch.Tensor]:
    hidden.grad = weight.grad = None
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    t0 = time.perf_counter()
    with amp:
        lp = fn(hidden, weight, tokens, chunk)
    lp.sum().backward()
    return time.perf_counter() - t0, hidden.grad.clone(), weight.grad.clone()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1024, help="completion tokens per pass (8 rows x 128)")
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=49_152)
    ap.add_argument("--hidden", type=int, default=576)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precision", choices=["bf16", "no"], default="bf16")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.tokens, args.hidden, generator=g).requires_grad_()
    weight = (torch.randn(args.vocab, args.hidden, generator=g) * 0.05).requires_grad_()
    tokens = torch.randint(0, args.vocab, (args.tokens,), generator=g)
    run = (hidden, weight, tokens, args.chunk, args.precision)
    timed(peer_pass, *run)  # warm-up both
    timed(our_pass, *run)
    ratios, peers, ours = [], [], []
    for r in range(args.rounds):
        tp, gh_p, gw_p = timed(peer_pass, *run)
        to, gh_o, gw_o = timed(our_pass, *run)
        peers.append(tp)
        ours.append(to)
        ratios.append(tp / to)
        print(f"round {r}: peer {tp:.3f} s, ours {to:.3f} s, ratio {tp / to:.2f}", flush=True)
    pairs = ((gh_p, gh_o), (gw_p, gw_o))
    cos = [float(F.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0)) for a, b in pairs]
    print(
        f"SUMMARY vocab_head {args.precision} tokens={args.tokens}: peer {statistics.median(peers):.3f} s, "
        f"ours {statistics.median(ours):.3f} s, ratio median {statistics.median(ratios):.2f} "
        f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}); gradient cosine hidden {cos[0]:.6f}, "
        f"weight {cos[1]:.6f}"
    )


if __name__ == "__main__":
    main()
