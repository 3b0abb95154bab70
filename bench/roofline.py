"""This machine's fp32 roofline, and our decode speed against it.

Measures, in the same run:
- compute peak: fp32 matmul GFLOP/s (square n x n, best of --repeats), at --threads threads;
- memory bandwidth: GB/s of a large tensor sum (read) and copy (read + write), best of --repeats;
- decode: SmolLM2-135M-Instruct loaded as the trainer loads it (`load_model_and_tokenizer`), greedy,
  the static KV cache the HF rollout engine uses on CPU, at batch 1, 8 and 32 after a --prompt-token
  prefill; s/step = (generate(1 + N) - generate(1)) / N.
For each batch: the compute bound (2 x parameters x batch FLOP per step, plus attention over the
cache) and the bandwidth bound (every weight read once per step, plus the KV cache) as step times,
and the fraction of each the measured step reaches. Summary line last.

    .venv/bin/python bench/roofline.py
    .venv/bin/python bench/roofline.py --batches 1,8 --steps 8     # quicker
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from decode_timing import decode_s_per_step  # bench/ is on sys.path when run as a script


def matmul_gflops(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def bandwidth_gbs(mb: int, repeats: int) -> tuple[float, float]:
    """(read GB/s via sum, read+write GB/s via copy) over an fp32 tensor of `mb` MB."""
    a = torch.randn(mb * 2**20 // 4)
    b = torch.empty_like(a)
    a.sum(), b.copy_(a)  # warm-up, pages touched
    read = copy = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.sum()
        t1 = time.perf_counter()
        b.copy_(a)
        t2 = time.perf_counter()
        read, copy = min(read, t1 - t0), min(copy, t2 - t1)
    nbytes = a.numel() * 4
    return nbytes / read / 1e9, 2 * nbytes / copy / 1e9


def decode_at_batch(model: torch.nn.Module, batch: int, prompt: int, steps: int, pad_id: int) -> float:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40_000, (batch, prompt), generator=gen)
    mask = torch.ones_like(ids)
    kw = {"pad_token_id": pad_id, "cache_implementation": "static"}  # the HF engine's CPU cache
    decode_s_per_step(model, ids, mask, 1, **kw)  # warm-up: the static cache and kernels
    return decode_s_per_step(model, ids, mask, steps, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--bandwidth-mb", type=int, default=1024)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pipeline.config import ModelConfig
    from pipeline.models import load_model_and_tokenizer

    gflops = matmul_gflops(args.matmul_n, args.repeats)
    read_gbs, copy_gbs = bandwidth_gbs(args.bandwidth_mb, args.repeats)
    print(
        f"fp32 matmul {args.matmul_n}^3: {gflops:.1f} GFLOP/s; bandwidth: read {read_gbs:.1f} GB/s, "
        f"copy {copy_gbs:.1f} GB/s ({args.threads} threads)"
    )

    model, tokenizer = load_model_and_tokenizer(ModelConfig(cache_dir=args.model_cache))
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once
    head = cfg.vocab_size * cfg.hidden_size
    # Read per decoding step: every matrix once (the tied embedding as the head; the embedding lookup
    # itself reads one row per sequence), in fp32.
    weight_bytes = 4 * n_params
    kv_heads = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_per_token = 2 * cfg.num_hidden_layers * kv_heads * head_dim  # K and V values per cached token
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        times = [
            decode_at_batch(model, batch, args.prompt, args.steps, tokenizer.pad_token_id)
            for _ in range(max(1, args.repeats // 2))
        ]
        step = statistics.median(times)
        context = args.prompt + args.steps / 2  # mean cache length over the timed steps
        flops = (
            2 * n_params * batch
            + 4 * batch * context * cfg.num_attention_heads * head_dim * cfg.num_hidden_layers
        )
        nbytes = weight_bytes + 4 * batch * context * kv_per_token
        compute_s, memory_s = flops / (gflops * 1e9), nbytes / (read_gbs * 1e9)
        rows.append((batch, step, compute_s / step, memory_s / step))
        print(
            f"batch {batch:>2}: {step * 1e3:.1f} ms/step = {batch / step:.0f} tokens/s; bounds: compute "
            f"{compute_s * 1e3:.1f} ms ({compute_s / step:.0%} reached), bandwidth {memory_s * 1e3:.1f} ms "
            f"({memory_s / step:.0%} reached)"
        )
    print(
        f"model: {n_params / 1e6:.0f}M parameters ({head / 1e6:.0f}M in the tied head), "
        f"{weight_bytes / 2**20:.0f} MB read per step"
    )
    summary = " ".join(
        f"b{b}_compute={c:.2f} b{b}_bandwidth={m:.2f} b{b}_tok_s={b / s:.0f}" for b, s, c, m in rows
    )
    print(f"SUMMARY roofline gflops={gflops:.1f} read_gbs={read_gbs:.1f} {summary}")


if __name__ == "__main__":
    main()
