"""This machine's roofline in fp32 and bf16, and our decode and training passes against it.

Measures, in the same run:
- compute peaks: fp32 and bf16 matmul GFLOP/s (square n x n, best of --repeats), at --threads threads
  (bf16: the oneDNN kernels autocast uses, on AMX / AVX512-BF16 where the CPU has them);
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
- precision: each pass is judged against the bound of the precision it runs in (`--precision`,
  default the pipeline's: trainer.mixed_precision=auto resolved here): the training pass in it
  (bf16: the bf16 peak), HF decode in the precision the HF engine generates in on CPU (the weights'
  own, fp32: `pipeline.modeling.precision.generation_precision`);
- rollout decode with the engine the pipeline samples with (the HF engine above; with --vllm also the
  colocated vLLM engine at batch 32, bf16 weights: 2 bytes per parameter read per step);
- training pass: one micro-batch (8 x (prompt + 128) tokens) through the trainer's scoring pass with
  gradients and its backward, FLOPs = 6 x parameters x tokens (+ attention), against the compute bound.
Summary line last.

    .venv/bin/python bench/roofline.py
    .venv/bin/python bench/roofline.py --batches 1,8 --steps 8     # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import torch
from decode_timing import decode_s_per_step  # bench/ is on sys.path when run as a script

from pipeline.modeling.precision import autocast, generation_precision, resolve_mixed_precision


def matmul_gflops(n: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
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


def engine_cache(precision: str) -> dict[str, Any]:
    """The HF engine's KV cache on CPU: static in fp32, dynamic under autocast (see rollout/hf.py)."""
    return {"cache_implementation": "static"} if precision == "no" else {}


def decode_at_batch(
    model: torch.nn.Module, batch: int, prompt: int, steps: int, pad_id: int, precision: str
) -> float:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40_000, (batch, prompt), generator=gen)
    mask = torch.ones_like(ids)
    kw = {"pad_token_id": pad_id, **engine_cache(precision)}
    with autocast(precision, "cpu"):
        decode_s_per_step(model, ids, mask, 1, **kw)  # warm-up: the cache and kernels
        return decode_s_per_step(model, ids, mask, steps, **kw)


def training_pass_s(
    model: Any, batch: int, prompt: int, completion: int, precision: str, repeats: int
) -> float:
    """Seconds of one micro-batch through the trainer's gradient pass (scoring with grad + backward)."""
    from pipeline.rl.scoring import CompletionScorer

    scorer = CompletionScorer(model)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40_000, (batch, prompt + completion), generator=gen)
    attn, cmask = torch.ones_like(ids), torch.ones(batch, completion)
    times = []
    for _ in range(1 + max(1, repeats // 2)):  # the first is a warm-up
        t0 = time.perf_counter()
        with autocast(precision, "cpu"):
            logprobs, _, _ = scorer(ids, attn, cmask, prompt, with_certainty=False, with_grad=True)
        logprobs.float().sum().backward()
        times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def vllm_decode_tok_s(model_path: str, tokenizer: Any, batch: int, new_tokens: int) -> float:
    """Completion tokens/s of the colocated vLLM engine (bf16) sampling `batch` rollouts."""
    from pipeline.config import SamplingConfig
    from pipeline.rollout.vllm import VLLMRolloutEngine
    from pipeline.types import Prompt

    engine = VLLMRolloutEngine(model_path, tokenizer, dtype="bfloat16", show_progress=False)
    prompts = [
        Prompt(id=f"p{i}", messages=[{"role": "user", "content": f"Count to {i + 50}."}])
        for i in range(batch)
    ]
    sampling = SamplingConfig(temperature=0.9, top_p=1.0, max_new_tokens=new_tokens, batch_size=batch)
    engine.generate(prompts[:2], 1, sampling, seed=0)  # warm-up
    t0 = time.perf_counter()
    groups = engine.generate(prompts, 1, sampling, seed=1)
    elapsed = time.perf_counter() - t0
    return sum(float(g.completion_mask.sum()) for g in groups) / elapsed


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


def kernel_bound_s(cfg: Any, batch: int, repeats: int, precision: str) -> tuple[float, float, float]:
    """(seconds per step of the step's matmuls timed alone, their GFLOP/s, the head's GFLOP/s)."""
    total = flops = head_gflops = 0.0
    for k, n, count in decode_matmul_shapes(cfg):
        x, w = torch.randn(batch, k), torch.randn(n, k)
        with autocast(precision, "cpu"):
            torch.nn.functional.linear(x, w)  # warm-up
        best = float("inf")
        for _ in range(max(3, repeats)):
            t0 = time.perf_counter()
            with autocast(precision, "cpu"):
                torch.nn.functional.linear(x, w)
            best = min(best, time.perf_counter() - t0)
        total += best * count
        flops += 2 * batch * k * n * count
        if n == cfg.vocab_size:
            head_gflops = 2 * batch * k * n / best / 1e9
    return total, flops / total / 1e9, head_gflops


def profiled_step_ms(
    model: Any, batch: int, prompt: int, steps: int, pad_id: int, precision: str
) -> dict[str, float]:
    """Self time per decode step (ms) of the matmuls, the attention kernel and everything else."""
    from torch.profiler import ProfilerActivity, profile

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40_000, (batch, prompt), generator=gen)
    kw = {"pad_token_id": pad_id, "do_sample": False, "eos_token_id": None, **engine_cache(precision)}

    def run(new_tokens: int) -> dict[str, float]:
        with torch.no_grad(), autocast(precision, "cpu"), profile(activities=[ProfilerActivity.CPU]) as prof:
            model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, **kw
            )
        out = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
        for e in prof.key_averages():
            kind = (
                "matmul"
                if e.key in ("aten::mm", "aten::addmm", "mkldnn::_linear_pointwise", "aten::linear")
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
    ap.add_argument("--precision", default="auto", help="auto (the pipeline's default), bf16 or no")
    ap.add_argument("--vllm", action="store_true", help="also the vLLM engine's rollout decode")
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pipeline.config.compose import compose_config
    from pipeline.modeling.models import load_model_and_tokenizer, resolve_model_path

    precision = resolve_mixed_precision(args.precision, "cpu")
    peaks = {"no": matmul_gflops(args.matmul_n, args.repeats)}
    peaks["bf16"] = matmul_gflops(args.matmul_n, args.repeats, torch.bfloat16)
    read_gbs, copy_gbs = bandwidth_gbs(args.bandwidth_mb, args.repeats)
    print(
        f"matmul {args.matmul_n}^3: fp32 {peaks['no']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s "
        f"({peaks['bf16'] / peaks['no']:.1f}x); bandwidth: read {read_gbs:.1f} GB/s, "
        f"copy {copy_gbs:.1f} GB/s "
        f"({args.threads} threads)"
    )
    decode_precision = generation_precision(precision, "cpu")
    gflops = peaks[decode_precision]
    print(f"HF decode runs in {decode_precision}, the training pass in {precision}")

    # conf/model/smollm2_135m.yaml, kept in --model-cache
    mcfg = dataclasses.replace(compose_config(["model=smollm2_135m"]).model, cache_dir=args.model_cache)
    model, tokenizer = load_model_and_tokenizer(mcfg)
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once
    head = cfg.vocab_size * cfg.hidden_size
    # Read per decoding step: every matrix once (the tied embedding as the head; the embedding lookup
    # itself reads one row per sequence), fp32 master weights (autocast reads them too).
    weight_bytes = 4 * n_params
    kv_bytes = 4 if decode_precision == "no" else 2
    kv_heads = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_per_token = 2 * cfg.num_hidden_layers * kv_heads * head_dim  # K and V values per cached token
    context = args.prompt + args.steps / 2  # mean cache length over the timed steps

    def bounds(batch: int, wbytes: float, kv: int) -> tuple[float, float]:
        flops = (
            2 * n_params * batch
            + 4 * batch * context * cfg.num_attention_heads * head_dim * cfg.num_hidden_layers
        )
        nbytes = wbytes + kv * batch * context * kv_per_token
        return flops / (gflops * 1e9), nbytes / (read_gbs * 1e9)

    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        times = [
            decode_at_batch(model, batch, args.prompt, args.steps, tokenizer.pad_token_id, decode_precision)
            for _ in range(max(1, args.repeats // 2))
        ]
        step = statistics.median(times)
        compute_s, memory_s = bounds(batch, weight_bytes, kv_bytes)
        rows.append((batch, step, compute_s / step, memory_s / step))
        print(
            f"HF decode batch {batch:>2}: {step * 1e3:.1f} ms/step = {batch / step:.0f} tokens/s; bounds: "
            f"compute {compute_s * 1e3:.1f} ms ({compute_s / step:.0%} reached), bandwidth "
            f"{memory_s * 1e3:.1f} ms ({memory_s / step:.0%} reached)"
        )
    print(
        f"model: {n_params / 1e6:.0f}M parameters ({head / 1e6:.0f}M in the tied head), "
        f"{weight_bytes / 2**20:.0f} MB read per step"
    )
    batch, step = rows[-1][0], rows[-1][1]
    extra = ""
    if args.vllm:
        tok_s = vllm_decode_tok_s(str(resolve_model_path(mcfg)), tokenizer, batch, args.steps * 4)
        # vLLM holds bf16 weights (2 bytes) and a bf16 KV cache; the bf16 compute peak.
        compute_s, memory_s = bounds(batch, 2 * n_params, 2)
        compute_s *= gflops / peaks["bf16"]
        step_v = batch / tok_s
        print(
            f"vLLM decode batch {batch}: {tok_s:.0f} tokens/s (sampling, prefill included); bounds (bf16): "
            f"compute {compute_s / step_v:.0%} reached, bandwidth {memory_s / step_v:.0%} reached"
        )
        extra = f" vllm_b{batch}_tok_s={tok_s:.0f} vllm_compute={compute_s / step_v:.2f}"
    kernel_s, kernel_gflops, head_gflops = kernel_bound_s(cfg, batch, args.repeats, decode_precision)
    print(
        f"batch {batch}: kernel bound {kernel_s * 1e3:.1f} ms/step (the step's matmuls alone: "
        f"{kernel_gflops:.0f} GFLOP/s = {kernel_gflops / gflops:.0%} of the square peak; output head "
        f"{head_gflops:.0f} GFLOP/s); the measured step reaches {kernel_s / step:.0%} of it"
    )
    prof = profiled_step_ms(model, batch, args.prompt, args.steps, tokenizer.pad_token_id, decode_precision)
    total = sum(prof.values())
    print(
        f"batch {batch} profile per step: matmuls {prof['matmul']:.1f} ms ({prof['matmul'] / total:.0%}), "
        f"attention {prof['attention']:.1f} ms ({prof['attention'] / total:.0%}), "
        f"other ops {prof['other']:.1f} ms; in-step matmuls run "
        f"{kernel_s * 1e3 / max(prof['matmul'], 1e-9):.0%} as fast as alone"
    )
    micro, completion = 8, 128
    train_s = training_pass_s(model, micro, args.prompt, completion, precision, args.repeats)
    tokens = micro * (args.prompt + completion)
    train_flops = 6 * n_params * tokens + 12 * micro * (args.prompt + completion) ** 2 / 2 * (
        cfg.num_attention_heads * head_dim * cfg.num_hidden_layers
    )
    train_bound = train_flops / (peaks[precision] * 1e9)
    print(
        f"training pass, {micro} x {args.prompt + completion} tokens (scoring with grad + backward): "
        f"{train_s:.2f} s, {train_flops / train_s / 1e9:.0f} GFLOP/s = {train_bound / train_s:.0%} of the "
        f"{'bf16' if precision == 'bf16' else 'fp32'} compute bound"
    )
    summary = " ".join(
        f"b{b}_compute={c:.2f} b{b}_bandwidth={m:.2f} b{b}_tok_s={b / s:.0f}" for b, s, c, m in rows
    )
    print(
        f"SUMMARY roofline precision={precision} fp32_gflops={peaks['no']:.1f} "
        f"bf16_gflops={peaks['bf16']:.1f} read_gbs={read_gbs:.1f} {summary} "
        f"b{batch}_kernel_bound={kernel_s / step:.2f} b{batch}_matmul_share={prof['matmul'] / total:.2f} "
        f"train_pass_s={train_s:.2f} train_compute={train_bound / train_s:.2f}{extra}"
    )


if __name__ == "__main__":
    main()
