"""This machine's fp32 roofline, and our decode speed against it.

Measures, in the same run:
- compute peak: fp32 matmul GFLOP/s (square n x n, best of --repeats), at --threads threads;
- memory bandwidth: GB/s of a large tensor sum (read) and copy (read + write), best of --repeats;
- decode: SmolLM2-135M-Instruct loaded as the trainer loads it (`load_model_and_tokenizer`), greedy,
  the static KV cache the HF rollout engine uses on CPU, at batch 1, 8 and 32 after a --prompt-token
  prefill; s/step = (generate(1 + N) - generate(1)) / N.
For each batch: the compute bound (2 x parameters x batch FLOP per step, plus attention over the
cache) and the bandwidth bound (every weight read once per step, plus the KV cache) as step times,
and the fraction of each the measured step reaches. Then what bounds the largest batch:
- kernel bound: the step's own matmul shapes ([batch, in] x [in, out] for every projection of every
  layer and the output head), each timed alone (hot cache) and summed: what the matmul library
  reaches at these skinny shapes, against the square-matmul peak;
- profile: torch.profiler's per-step time of the matmuls and the attention kernel inside a real
  decode step (profile of generate(1 + N) minus generate(1), over N).
Summary line last.

    .venv/bin/python bench/roofline.py
    .venv/bin/python bench/roofline.py --batches 1,8 --steps 8     # quicker
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

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


def decode_matmul_shapes(cfg: Any) -> list[tuple[int, int, int]]:
    """(in, out, count) of every matmul of one decode step of a Llama/Qwen-style decoder."""
    heads, hidden = cfg.num_attention_heads, cfg.hidden_size
    kv_heads = getattr(cfg, "num_key_value_heads", heads)
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    layers = cfg.num_hidden_layers
    return [
        (hidden, heads * head_dim, layers),  # q
        (hidden, kv_heads * head_dim, 2 * layers),  # k, v
        (heads * head_dim, hidden, layers),  # o
        (hidden, cfg.intermediate_size, 2 * layers),  # gate, up
        (cfg.intermediate_size, hidden, layers),  # down
        (hidden, cfg.vocab_size, 1),  # output head
    ]


def kernel_bound_s(cfg: Any, batch: int, repeats: int) -> tuple[float, float, float]:
    """(seconds per step of the step's matmuls timed alone, their GFLOP/s, the head's GFLOP/s)."""
    total = flops = head_gflops = 0.0
    for k, n, count in decode_matmul_shapes(cfg):
        x, w = torch.randn(batch, k), torch.randn(n, k)
        torch.nn.functional.linear(x, w)  # warm-up
        best = float("inf")
        for _ in range(max(3, repeats)):
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best = min(best, time.perf_counter() - t0)
        total += best * count
        flops += 2 * batch * k * n * count
        if n == cfg.vocab_size:
            head_gflops = 2 * batch * k * n / best / 1e9
    return total, flops / total / 1e9, head_gflops


def profiled_step_ms(model: Any, batch: int, prompt: int, steps: int, pad_id: int) -> dict[str, float]:
    """Self time per decode step (ms) of the matmuls, the attention kernel and everything else."""
    from torch.profiler import ProfilerActivity, profile

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40_000, (batch, prompt), generator=gen)
    kw = {"pad_token_id": pad_id, "cache_implementation": "static", "do_sample": False, "eos_token_id": None}

    def run(new_tokens: int) -> dict[str, float]:
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, **kw
            )
        out = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
        for e in prof.key_averages():
            kind = (
                "matmul"
                if e.key in ("aten::mm", "aten::addmm")
                else "attention"
                if "attention" in e.key
                else "other"
            )
            out[kind] += e.self_cpu_time_total / 1e3  # us -> ms
        return out

    run(2)  # warm-up
    one, many = run(1), run(1 + steps)
    return {k: (many[k] - one[k]) / steps for k in one}


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
    batch, step = rows[-1][0], rows[-1][1]
    kernel_s, kernel_gflops, head_gflops = kernel_bound_s(cfg, batch, args.repeats)
    print(
        f"batch {batch}: kernel bound {kernel_s * 1e3:.1f} ms/step (the step's matmuls alone: "
        f"{kernel_gflops:.0f} GFLOP/s = {kernel_gflops / gflops:.0%} of the square peak; output head "
        f"{head_gflops:.0f} GFLOP/s); the measured step reaches {kernel_s / step:.0%} of it"
    )
    prof = profiled_step_ms(model, batch, args.prompt, args.steps, tokenizer.pad_token_id)
    total = sum(prof.values())
    print(
        f"batch {batch} profile per step: matmuls {prof['matmul']:.1f} ms ({prof['matmul'] / total:.0%}), "
        f"attention {prof['attention']:.1f} ms ({prof['attention'] / total:.0%}), "
        f"other ops {prof['other']:.1f} ms; in-step matmuls run {kernel_s * 1e3 / prof['matmul']:.0%} "
        f"as fast as alone"
    )
    summary = " ".join(
        f"b{b}_compute={c:.2f} b{b}_bandwidth={m:.2f} b{b}_tok_s={b / s:.0f}" for b, s, c, m in rows
    )
    print(
        f"SUMMARY roofline gflops={gflops:.1f} read_gbs={read_gbs:.1f} {summary} "
        f"b{batch}_kernel_bound={kernel_s / step:.2f} b{batch}_matmul_share={prof['matmul'] / total:.2f}"
    )


if __name__ == "__main__":
    main()
