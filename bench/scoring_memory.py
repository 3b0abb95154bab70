"""Peak memory of the scoring pass, chunked (ours) vs the plain full-logits pass, same run.

B=8 sequences of T=1024 tokens (64 prompt + 960 completion), a tiny random Llama with a Qwen-sized
vocabulary (V=151,936). Each variant runs in a fresh subprocess; the figure is the growth of the
process's peak RSS (ru_maxrss) over its own baseline taken after the model and inputs exist.

    .venv/bin/python bench/scoring_memory.py            # both variants, summary line last
    .venv/bin/python bench/scoring_memory.py --batch 4  # a smaller plain pass if RAM is short
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch

VOCAB = 151_936
PROMPT = 64


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_variant(variant: str, batch: int, seq: int, chunk: int) -> dict:
    from pipeline.modeling.models import tiny_random_model
    from pipeline.modeling.prompt_cache import position_ids_from_mask
    from pipeline.rl.scoring import score_completions

    torch.manual_seed(0)
    model = tiny_random_model(vocab_size=VOCAB, hidden_size=64, num_layers=2, num_heads=4)
    ids = torch.randint(3, VOCAB, (batch, seq))
    attn = torch.ones_like(ids)
    cmask = torch.ones(batch, seq - PROMPT)
    with torch.no_grad():  # warm-up on a tiny input so lazy allocations are in the baseline
        model(input_ids=ids[:1, :8])
    base = _peak_mb()
    t0 = time.perf_counter()
    with torch.no_grad():
        if variant == "chunked":
            s = score_completions(model, ids, attn, PROMPT, cmask, chunk_tokens=chunk)
            checksum = float(s.self_certainty.sum() + s.logprobs.sum() + s.entropy.sum())
        else:
            logits = model(
                input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn)
            ).logits
            logits = logits[:, PROMPT - 1 : -1]  # [B, C, V]
            logp = torch.log_softmax(logits, dim=-1)
            tok = logp.gather(-1, ids[:, PROMPT:, None]).squeeze(-1)
            sc = torch.logsumexp(logits, -1) - logits.mean(-1) - math.log(VOCAB)
            ent = -(logp.exp() * logp).sum(-1)
            checksum = float(sc.sum() + tok.sum() + ent.sum())
    elapsed = time.perf_counter() - t0
    params_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return {
        "variant": variant,
        "batch": batch,
        "seq": seq,
        "extra_peak_mb": _peak_mb() - base,
        "model_mb": params_mb,
        "seconds": elapsed,
        "checksum": checksum,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=256, help="chunk_tokens of the chunked pass")
    ap.add_argument("--variant", choices=["chunked", "full"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.batch, args.seq, args.chunk)))
        return
    results = {}
    for variant in ("chunked", "full"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--batch",
            str(args.batch),
            "--seq",
            str(args.seq),
            "--chunk",
            str(args.chunk),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{variant}: failed (rc {proc.returncode}): {proc.stderr.strip()[-300:]}")
            continue
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[variant]
        print(
            f"{variant:8s} B={r['batch']} T={r['seq']} V={VOCAB}: extra peak {r['extra_peak_mb']:.0f} MiB "
            f"above a {r['model_mb']:.0f} MiB model, {r['seconds']:.1f} s"
        )
    c, f = results.get("chunked"), results.get("full")
    ratio = f"{f['extra_peak_mb'] / c['extra_peak_mb']:.1f}x" if c and f else "n/a"
    ok = c is not None and c["extra_peak_mb"] <= 1536
    print(
        f"SUMMARY scoring_memory chunked_extra_mb={c['extra_peak_mb'] if c else float('nan'):.0f} "
        f"full_extra_mb={f['extra_peak_mb'] if f else float('nan'):.0f} full_over_chunked={ratio} "
        f"within_1.5GB={'yes' if ok else 'no'}"
    )


if __name__ == "__main__":
    main()
