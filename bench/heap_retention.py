"""A gradient micro-batch with the C heap kept (`trainer.retain_freed_memory`, pipeline/heap.py) vs not.

Each run is its own process (the malloc settings are process-wide): SmolLM2 at the pipeline's precision
(`auto`), the trainer's gradient pass (scoring pass with gradients + backward) over 8 rows = one prompt
of --prompt-len tokens x 8 completions of --completion-len tokens, --passes times after a warm-up.
Rounds alternate kept / plain; the ratio is per round. Also prints each run's peak RSS and the time
torch.profiler gives the `copy_` kernels (where the page faults of fresh tensors land).

    make setup && .venv/bin/python bench/heap_retention.py
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from micro_batch import gradient_micro_batch, smollm2  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    import torch
    from torch.profiler import profile

    from pipeline.heap import retain_freed_memory
    from pipeline.modeling.precision import resolve_mixed_precision

    torch.set_num_threads(args.threads)
    applied = retain_freed_memory() if args.worker == "kept" else False
    model = smollm2(args.model_cache)
    precision = resolve_mixed_precision("auto", "cpu")
    gradient_pass = gradient_micro_batch(model, args.prompt_len, args.completion_len, precision)

    gradient_pass()  # warm-up
    times = []
    for _ in range(args.passes):
        t0 = time.perf_counter()
        gradient_pass()
        times.append(time.perf_counter() - t0)
    with profile() as prof:
        gradient_pass()
    copy_s = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key == "aten::copy_") / 1e6
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = dict(applied=applied, times=times, copy_s=copy_s, peak_gb=peak_gb, precision=precision)
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=4, help="timed gradient passes per run")
    ap.add_argument("--prompt-len", type=int, default=200)
    ap.add_argument("--completion-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    ap.add_argument("--worker", choices=("kept", "plain"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    ratios, medians = [], {"kept": [], "plain": []}
    for r in range(args.rounds):
        row = {}
        for mode in ("kept", "plain") if r % 2 == 0 else ("plain", "kept"):
            cmd = [sys.executable, __file__, "--worker", mode, *sys.argv[1:]]
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            row[mode] = statistics.median(res["times"])
            medians[mode].append(row[mode])
            times = ", ".join(f"{t:.2f}" for t in res["times"])
            print(
                f"round {r + 1} {mode} (applied={res['applied']}, {res['precision']}): [{times}] s, "
                f"copy_ {res['copy_s']:.2f} s, peak RSS {res['peak_gb']:.2f} GB",
                flush=True,
            )
        ratios.append(row["plain"] / row["kept"])
        print(f"round {r + 1}: plain / kept = {ratios[-1]:.2f}", flush=True)
    print(
        f"SUMMARY heap_retention kept_s={statistics.median(medians['kept']):.2f} "
        f"plain_s={statistics.median(medians['plain']):.2f} "
        f"plain_over_kept={' '.join(f'{x:.2f}' for x in ratios)} median={statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
