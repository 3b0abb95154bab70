"""Our GRPO step vs TRL's GRPOTrainer at equal config, same machine, alternating runs; plus our INTUITOR.

Config (issue 6): SmolLM2-135M-Instruct (the embedded GGUF, dequantized to fp32), MATH train prompts from
$INTUITOR_DATA_DIR, GRPO with the gold reward (our grader in both), G=8, 4 prompts per step, 128 new
tokens, temperature 0.9, beta 0.005, lr 1e-6, bnpo loss, 1 iteration, fp32, 2 threads. Both see the
same prompts in the same order (TRL's shuffling off, ours fed in file order). TRL runs at each
--trl-micro-batches value (per_device_train_batch_size, with gradient accumulation and
steps_per_generation making up the 32 completions of a step); the fastest is its figure.

Each implementation runs in its own process (TRL at micro-batch 32 peaks near 24 GB: two at once would
not fit): one warm-up step, then --steps timed steps. A round runs every implementation once, the
order flipping every round (A B, B A, ...); the ratio is taken per round, its median reported.
Peak RSS is the process's ru_maxrss. The INTUITOR run also counts decoder calls at step 0 against
GRPO's (identical rollouts at step 0: equal counts = no extra forward pass for the reward).

    .venv/bin/pip install -e '.[bench]'
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/vs_trl.py                 # full (~45 min)
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/vs_trl.py --rounds 1 --steps 1 \\
        --new-tokens 16 --trl-micro-batches 32                                        # smoke (minutes)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

GROUP, PROMPTS = 8, 4
COMPLETIONS = GROUP * PROMPTS


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _setup(args: argparse.Namespace) -> tuple[Any, Any, list[Any]]:
    from pipeline.config import DataConfig, ModelConfig
    from pipeline.data.registry import load_prompts
    from pipeline.models import load_model_and_tokenizer

    torch.set_num_threads(args.threads)
    model_cfg = ModelConfig(cache_dir=args.model_cache)
    policy, tokenizer = load_model_and_tokenizer(model_cfg)
    prompts = load_prompts(DataConfig(name="math", limit=PROMPTS * (args.steps + 1)), model_cfg.system_prompt)
    return policy, tokenizer, prompts


def run_ours(args: argparse.Namespace, method: str) -> dict[str, Any]:
    from pipeline.config import (
        AlgorithmConfig,
        MethodConfig,
        RewardSpec,
        TrackingConfig,
        TrainConfig,
        TrainerConfig,
    )
    from pipeline.rl.trainer import Trainer

    policy, tokenizer, prompts = _setup(args)
    reward = "gold" if method == "grpo" else "self_certainty"
    cfg = TrainConfig(
        method=MethodConfig(name=method, rewards=[RewardSpec(reward)]),
        algorithm=AlgorithmConfig(
            steps=args.steps + 1,
            group_size=GROUP,
            prompts_per_step=PROMPTS,
            max_new_tokens=args.new_tokens,
            temperature=0.9,
            beta=0.005,
            lr=1e-6,
            loss_aggregation="bnpo",
            num_iterations=1,
        ),
        trainer=TrainerConfig(
            output_dir=tempfile.mkdtemp(prefix="vs_trl_"), resume=False, threads=args.threads
        ),
        tracking=TrackingConfig(backend="null"),
    )
    cfg.sampling.batch_size = COMPLETIONS  # one rollout batch per step
    trainer = Trainer(cfg, policy, tokenizer, prompts, show_progress=False)
    # Same prompts in the same order as TRL (file order, no shuffling).
    trainer.sampler.batch = lambda step: prompts[step * PROMPTS : (step + 1) * PROMPTS]
    calls = [0]
    policy.get_decoder().register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    steps, tokens_per_s, decoder_calls, phases = [], [], [], []
    for step in range(args.steps + 1):
        calls[0] = 0
        t0 = time.perf_counter()
        m = trainer.step(step)
        steps.append(time.perf_counter() - t0)
        tokens_per_s.append(m["throughput/rollout_tokens_per_s"])
        decoder_calls.append(calls[0])
        phases.append({k: m[f"time/{k}_s"] for k in ("rollout", "score", "update")})
    return {
        "impl": f"ours-{method}",
        "step_s": steps[1:],
        "rollout_tok_s": tokens_per_s[1:],
        "decoder_calls_step0": decoder_calls[0],
        "peak_rss_gb": _peak_rss_gb(),
        # the trainer's own split of each timed step: rollout, scoring passes, update
        "phases": {k: statistics.median(p[k] for p in phases[1:]) for k in phases[0]},
    }


def run_trl(args: argparse.Namespace, micro_batch: int) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from pipeline.eval.math_grader import grade

    policy, tokenizer, prompts = _setup(args)
    data = Dataset.from_list(
        [{"prompt": p.messages, "gold": p.gold, "fallback": p.answer_fallback} for p in prompts]
    )

    def gold_reward(prompts: list, completions: list, gold: list, fallback: list, **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [float(grade(t, g, f).correct) for t, g, f in zip(texts, gold, fallback, strict=True)]

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self.lengths: list[float] = []
            self.t0 = 0.0

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            self.steps.append(time.perf_counter() - self.t0)

        def on_log(self, _args: Any, _state: Any, _control: Any, logs: dict | None = None, **__: Any) -> None:
            if logs and "completions/mean_length" in logs:
                self.lengths.append(float(logs["completions/mean_length"]))

    accumulation = COMPLETIONS // micro_batch
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="vs_trl_trl_"),
        per_device_train_batch_size=micro_batch,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation,  # one generation of 32 completions per optimizer step
        num_generations=GROUP,
        max_completion_length=args.new_tokens,
        temperature=0.9,
        top_p=1.0,
        beta=0.005,
        learning_rate=1e-6,
        loss_type="bnpo",
        num_iterations=1,
        max_steps=args.steps + 1,
        shuffle_dataset=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=False,
        fp16=False,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    timer = Timer()
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[gold_reward],
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    return {
        "impl": f"trl-mb{micro_batch}",
        "step_s": timer.steps[1:],
        # TRL times no rollout separately: completion tokens over the whole step, a lower bound.
        "rollout_tok_s": [
            COMPLETIONS * n / s for n, s in zip(timer.lengths[1:], timer.steps[1:], strict=False)
        ],
        "peak_rss_gb": _peak_rss_gb(),
    }


def _worker(args: argparse.Namespace) -> None:
    kind, _, value = args.worker.partition(":")
    result = run_ours(args, value) if kind == "ours" else run_trl(args, int(value))
    print("RESULT " + json.dumps(result), flush=True)


def _launch(worker: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", worker, "--steps", str(args.steps)]
    argv += ["--new-tokens", str(args.new_tokens), "--threads", str(args.threads)]
    argv += ["--model-cache", args.model_cache]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{worker} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    print(
        f"  {result['impl']}: steps {', '.join(f'{s:.1f}' for s in result['step_s'])} s, "
        f"peak RSS {result['peak_rss_gb']:.1f} GB"
        + ("".join(f", {k} {v:.1f} s" for k, v in result["phases"].items()) if "phases" in result else ""),
        flush=True,
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run (after one warm-up step)")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trl-micro-batches", default="32,8")
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args)
        return
    Path(args.model_cache).parent.mkdir(parents=True, exist_ok=True)
    workers = ["ours:grpo", *(f"trl:{m}" for m in args.trl_micro_batches.split(","))]
    runs: list[list[dict[str, Any]]] = []
    for r in range(args.rounds):
        order = workers if r % 2 == 0 else workers[::-1]
        print(f"round {r + 1}: {' '.join(order)}", flush=True)
        runs.append([_launch(w, args) for w in order])
    intuitor = _launch("ours:intuitor", args)

    def median(impl: str, key: str = "step_s") -> float:
        return statistics.median(x for rnd in runs for res in rnd if res["impl"] == impl for x in res[key])

    ours = median("ours-grpo")
    trl_impls = [f"trl-mb{m}" for m in args.trl_micro_batches.split(",")]
    best = min(trl_impls, key=median)
    ratios = []
    for rnd in runs:
        by = {res["impl"]: statistics.median(res["step_s"]) for res in rnd}
        ratios.append(by[best] / by["ours-grpo"])
    rss = {res["impl"]: res["peak_rss_gb"] for rnd in runs for res in rnd}
    grpo_calls = next(res["decoder_calls_step0"] for rnd in runs for res in rnd if res["impl"] == "ours-grpo")
    print(f"median s/step: ours {ours:.1f}; " + "; ".join(f"{t} {median(t):.1f}" for t in trl_impls))
    print(f"per-round ratio {best}/ours: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(
        f"ours INTUITOR: {statistics.median(intuitor['step_s']):.1f} s/step; decoder calls at step 0: "
        f"INTUITOR {intuitor['decoder_calls_step0']}, GRPO {grpo_calls}"
    )
    print(
        f"SUMMARY vs_trl ours_grpo_s={ours:.1f} trl_best={best} trl_s={median(best):.1f} "
        f"ratio_trl_over_ours={statistics.median(ratios):.2f} ours_rss_gb={rss['ours-grpo']:.1f} "
        f"trl_rss_gb={rss[best]:.1f} ours_rollout_tok_s={median('ours-grpo', 'rollout_tok_s'):.0f} "
        f"intuitor_s={statistics.median(intuitor['step_s']):.1f} "
        f"intuitor_decoder_calls={intuitor['decoder_calls_step0']} grpo_decoder_calls={grpo_calls}"
    )


if __name__ == "__main__":
    main()
