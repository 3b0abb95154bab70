"""Decode speed of the copy-free GQA attention (ours) vs transformers' stock SDPA path, same run.

SmolLM2-135M-Instruct (the prepared models/base, or --model), a batch of left-padded prompts of
--prompt tokens, greedy decode with a KV cache. Per implementation: one generate of 1 token (prefill)
and one of 1 + --steps tokens; the difference over --steps is the decode time per step. Alternates
A B A B over --repeats and reports medians and the ratio; the summary line is last.

    .venv/bin/python bench/gqa_attention.py                       # batch 32, 1,000-token prompts
    .venv/bin/python bench/gqa_attention.py --batch 8 --prompt 400
"""

from __future__ import annotations

import argparse
import statistics

import torch
from decode_timing import decode_s_per_step  # bench/ is on sys.path when run as a script
from transformers import AutoModelForCausalLM

from pipeline.modeling.attention import use_gqa_attention


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40_000, (args.batch, args.prompt), generator=gen)
    mask = torch.ones_like(ids)
    for i in range(args.batch):  # ragged left padding, as a real batch has
        mask[i, : (i * args.prompt) // (4 * args.batch)] = 0
    models = {
        "stock_sdpa": AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval(),
        "ours_gqa": use_gqa_attention(
            AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        ).eval(),
    }
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.repeats):
        for name, model in models.items():
            s = decode_s_per_step(model, ids, mask, args.steps, pad_token_id=0)
            times[name].append(s)
            print(f"repeat {r} {name}: {s:.3f} s/decode step")
    ours, stock = statistics.median(times["ours_gqa"]), statistics.median(times["stock_sdpa"])
    print(
        f"SUMMARY batch={args.batch} prompt={args.prompt} decode_s_per_step stock={stock:.3f} "
        f"ours={ours:.3f} speedup={stock / ours:.2f}x"
    )


if __name__ == "__main__":
    main()
