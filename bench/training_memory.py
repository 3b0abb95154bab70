"""Peak memory of the training (gradient) pass: ours vs the plain full-logits pass, same run (issue 6).

SmolLM2-135M-Instruct (the embedded GGUF, dequantized to fp32), 32 sequences x 320 tokens laid out as
a GRPO step: 4 prompts of 192 tokens, each with G=8 completions of 128 tokens. Variants:
- ours:      the trainer's gradient pass (pipeline.rl.scoring.score_completions with_grad): micro-batches
             of --micro-batch rows (the trainer's default 8) with gradient accumulation, each distinct
             prompt run once per micro-batch, log-probs from chunked logits recomputed in backward.
- ours-mb32: the same in one micro-batch of 32 rows (what is left at an equal batch: chunked logits
             and the shared prompt).
- full:      the plain implementation: model(...).logits for all 32 x 320 positions, log_softmax,
             gather, masked mean, backward, in one batch.
Each variant runs in a fresh subprocess; its figure is the growth of ru_maxrss over a baseline taken
after the model, its gradient buffers and the inputs exist (a warm-up backward on a tiny input).

    .venv/bin/python bench/training_memory.py        # all three, ~5 min; the full pass peaks near 20 GB
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time

import torch

PROMPTS, GROUP, PROMPT_LEN, COMPLETION_LEN = 4, 8, 192, 128
ROWS = PROMPTS * GROUP


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, vocab, (PROMPTS, PROMPT_LEN), generator=g)
    ids = torch.cat(
        [prompts.repeat_interleave(GROUP, 0), torch.randint(3, vocab, (ROWS, COMPLETION_LEN), generator=g)], 1
    )  # [32, 320]
    return ids, torch.ones_like(ids), torch.ones(ROWS, COMPLETION_LEN)


def run_variant(variant: str, micro_batch: int, model_cache: str, threads: int) -> dict:
    from pipeline.config.compose import compose_config
    from pipeline.modeling.models import load_model_and_tokenizer
    from pipeline.modeling.prompt_cache import position_ids_from_mask
    from pipeline.rl.scoring import score_completions

    torch.set_num_threads(threads)
    # conf/model/smollm2_135m.yaml, kept in --model-cache
    model_cfg = dataclasses.replace(compose_config(["model=smollm2_135m"]).model, cache_dir=model_cache)
    model, _ = load_model_and_tokenizer(model_cfg)
    model.eval()
    ids, attn, cmask = _batch(model.config.vocab_size)
    # warm-up: gradient buffers and lazily allocated state belong to the baseline
    model(input_ids=ids[:1, :8]).logits.sum().backward()
    model.zero_grad(set_to_none=False)
    base = _peak_mb()
    tokens = float(cmask.sum())
    t0 = time.perf_counter()
    if variant == "full":
        logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn)).logits
        logp = torch.log_softmax(logits[:, PROMPT_LEN - 1 : -1], dim=-1)  # [32, 128, V]
        tok = logp.gather(-1, ids[:, PROMPT_LEN:, None]).squeeze(-1)
        ((tok * cmask).sum() / tokens).backward()
    else:
        rows = ROWS if variant == "ours-mb32" else micro_batch
        for start in range(0, ROWS, rows):
            sl = slice(start, start + rows)
            s = score_completions(
                model, ids[sl], attn[sl], PROMPT_LEN, cmask[sl], with_grad=True, with_certainty=False
            )
            ((s.logprobs * cmask[sl]).sum() / tokens).backward()
    elapsed = time.perf_counter() - t0
    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    grad_norm = float(torch.norm(torch.stack(grads)))  # the variants compute the same gradient
    return {
        "variant": variant,
        "micro_batch": ROWS if variant != "ours" else micro_batch,
        "extra_peak_mb": _peak_mb() - base,
        "seconds": elapsed,
        "grad_norm": grad_norm,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--micro-batch", type=int, default=8, help="rows per micro-batch of ours")
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="ours,ours-mb32,full")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.micro_batch, args.model_cache, args.threads)))
        return
    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", variant, "--micro-batch", str(args.micro_batch)]
        cmd += ["--model-cache", args.model_cache, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{variant}: failed (rc {proc.returncode}): {proc.stderr.strip()[-500:]}", flush=True)
            continue
        r = results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{variant:9s} micro-batch {r['micro_batch']:2d}: extra peak {r['extra_peak_mb']:7.0f} MiB, "
            f"{r['seconds']:.1f} s, grad norm {r['grad_norm']:.6g}",
            flush=True,
        )
    full = results.get("full", {}).get("extra_peak_mb", float("nan"))
    ours = results.get("ours", {}).get("extra_peak_mb", float("nan"))
    ours32 = results.get("ours-mb32", {}).get("extra_peak_mb", float("nan"))
    print(
        f"SUMMARY training_memory rows={ROWS} tokens_per_row={PROMPT_LEN + COMPLETION_LEN} "
        f"ours_mb={args.micro_batch} ours_extra_mb={ours:.0f} ours_mb32_extra_mb={ours32:.0f} "
        f"full_extra_mb={full:.0f} ours_over_full={ours / full:.3f} ours_mb32_over_full={ours32 / full:.3f}"
    )


if __name__ == "__main__":
    main()
