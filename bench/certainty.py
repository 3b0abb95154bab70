"""Self-certainty and entropy in float64 (pipeline.modeling.certainty): row blocks in reused buffers vs
one block per call, alone and inside the no-grad scoring pass.

Peer, same process, rounds alternating: `certainty_and_entropy(..., block_rows=--chunk)`, i.e. the whole
[chunk, V] float64 working copy and its exp at once (two fresh 100 MB temporaries per call at SmolLM2's
V = 49,152; what the pass ran before), vs BLOCK_ROWS rows at a time (ours, the default). Two timings:
- op: [--chunk, V] float32 logits -> certainty and entropy;
- pass: SmolLM2-135M-Instruct's no-grad scoring pass with certainty (what the reference pass and
  evaluation run) over --rows rows of --prompt-len + --completion-len tokens, at the pipeline's
  precision (bf16 autocast on a bf16 CPU).
Outputs are compared: equal (each row's reductions do not depend on the other rows of a block).

    .venv/bin/python bench/certainty.py --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import time

import torch

import pipeline.modeling.vocab_head as vocab_head
from pipeline.modeling.certainty import BLOCK_ROWS, certainty_and_entropy
from pipeline.modeling.precision import autocast, resolve_mixed_precision
from pipeline.rl.scoring import score_completions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=256, help="algorithm.scoring_chunk_tokens")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=80)
    ap.add_argument("--completion-len", type=int, default=108)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    args = ap.parse_args()
    from pipeline.config.compose import compose_config
    from pipeline.modeling.models import load_model_and_tokenizer

    torch.set_num_threads(args.threads)
    model_cfg = dataclasses.replace(compose_config(["model=smollm2_135m"]).model, cache_dir=args.model_cache)
    model, _ = load_model_and_tokenizer(model_cfg)
    model.eval()
    precision = resolve_mixed_precision("auto", "cpu")
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(args.chunk, vocab, generator=g) * 4
    ids = torch.randint(3, vocab, (args.rows, args.prompt_len + args.completion_len), generator=g)
    mask = torch.ones(args.rows, args.completion_len)

    def op(rows: int) -> tuple[float, tuple[torch.Tensor, torch.Tensor]]:
        t0 = time.perf_counter()
        for _ in range(4):
            out = certainty_and_entropy(logits, block_rows=rows)
        return (time.perf_counter() - t0) / 4, out

    def scoring_pass(rows: int) -> tuple[float, torch.Tensor]:
        # the pass looks the function up in vocab_head's namespace: point it at the block size timed
        vocab_head.certainty_and_entropy = functools.partial(certainty_and_entropy, block_rows=rows)
        t0 = time.perf_counter()
        with torch.no_grad(), autocast(precision, "cpu"):
            s = score_completions(model, ids, torch.ones_like(ids), args.prompt_len, mask)
        vocab_head.certainty_and_entropy = certainty_and_entropy
        return time.perf_counter() - t0, s.self_certainty

    sizes = (BLOCK_ROWS, args.chunk)
    for rows in sizes:  # warm-up
        op(rows), scoring_pass(rows)
    op_ratios, pass_ratios, same = [], [], True
    for r in range(args.rounds):
        order = sizes if r % 2 == 0 else sizes[::-1]
        ops = {rows: op(rows) for rows in order}
        passes = {rows: scoring_pass(rows) for rows in order}
        same &= all(torch.equal(a, b) for a, b in zip(ops[BLOCK_ROWS][1], ops[args.chunk][1], strict=True))
        same &= torch.equal(passes[BLOCK_ROWS][1], passes[args.chunk][1])
        op_ratios.append(ops[args.chunk][0] / ops[BLOCK_ROWS][0])
        pass_ratios.append(passes[args.chunk][0] / passes[BLOCK_ROWS][0])
        print(
            f"round {r}: op {ops[args.chunk][0] * 1e3:.1f} ms (one block) vs "
            f"{ops[BLOCK_ROWS][0] * 1e3:.1f} ms (blocks of {BLOCK_ROWS}) = {op_ratios[-1]:.2f}x; "
            f"pass {passes[args.chunk][0]:.2f} s vs {passes[BLOCK_ROWS][0]:.2f} s = {pass_ratios[-1]:.2f}x",
            flush=True,
        )
    print(
        f"SUMMARY certainty precision={precision} chunk={args.chunk} block_rows={BLOCK_ROWS} "
        f"op_ratio={statistics.median(op_ratios):.2f} per_round={[round(x, 2) for x in op_ratios]} "
        f"pass_ratio={statistics.median(pass_ratios):.2f} per_round={[round(x, 2) for x in pass_ratios]} "
        f"identical_outputs={same}"
    )


if __name__ == "__main__":
    main()
