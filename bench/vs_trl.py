"""One GRPO step of the pipeline, as `dvc repro` runs it, vs TRL's best setting and vs an older commit.

Config (issue 6): SmolLM2-135M-Instruct (the embedded GGUF, dequantized to fp32 master weights), MATH
train prompts from $INTUITOR_DATA_DIR, GRPO with the gold reward (our grader in both), G=8, 4 prompts
per step, 128 new tokens, temperature 0.9, beta 0.005, lr 1e-6, bnpo loss, 1 iteration, 2 threads.

- ours: the train stage's own code path. conf/ is composed as `dvc exp run -S ...` composes it (the
  overrides above plus --override), `pipeline.steps.method_train_config` turns it into the
  method's TrainConfig and `pipeline.steps.run_training` (what the stage calls) trains, with the
  engine `make_engine` builds and the precision the config resolves to on this machine (`auto`:
  bf16 autocast where the CPU has bf16 matrix units). The step times are the trainer's own
  `time/step_s` (rollout + scoring + update, no checkpoint writing).
- trl-mb<k>: TRL 1.16 `GRPOTrainer` at its best settings here: bf16=True (autocast over fp32 weights,
  like ours) where the CPU has bf16 matrix units, else fp32 (--trl-bf16 auto: the rule ours' `auto`
  follows; without those units torch emulates bf16 matmuls, ~400x slower than fp32 on an AVX2-only
  EPYC), and each --trl-micro-batches value as per_device_train_batch_size, with gradient
  accumulation and steps_per_generation making up the 32 completions of a step. Its fastest micro-batch
  is its figure. TRL's vLLM colocate mode is not run: it needs CUDA (see bench/README.md).
- base: `bench/vs_trl.py --worker ours:grpo` of the commit --baseline (default: main before issue 16),
  extracted with `git archive` and run in this venv: the old step at the old defaults (fp32, HF
  generate), same config.

Same prompts in the same order everywhere: ours draws them with the pipeline's seeded sampler; TRL
(shuffling off) and the baseline (file order) read a copy of those MATH records in that order.
Each implementation runs in its own process: one warm-up step, then --steps timed steps. A round runs
every implementation once, the order flipping every round; ratios are taken per round, their median
reported. Peak RSS is the process's ru_maxrss.

    .venv/bin/pip install -e '.[bench]'
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/vs_trl.py                 # full
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/vs_trl.py --rounds 1 --steps 1 \\
        --new-tokens 16 --trl-micro-batches 32 --baseline ''                          # smoke (minutes)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from step_config import GROUP, PROMPTS, step_overrides  # bench/ is on sys.path when run as a script

COMPLETIONS = GROUP * PROMPTS
# main before issue 16: fp32 passes, HF generate rollouts (52.0 s/step in bench/README.md)
DEFAULT_BASELINE = "d1c8677"
ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _overrides(args: argparse.Namespace, out_dir: str) -> list[str]:
    """The issue-6 config as `dvc exp run -S` overrides of conf/ (then the user's --override)."""
    return step_overrides(
        steps=args.steps + 1,
        new_tokens=args.new_tokens,
        threads=args.threads,
        out_dir=out_dir,
        model_cache=args.model_cache,
        extra=args.override,
    )


def _compose(args: argparse.Namespace, out_dir: str) -> Any:
    from pipeline.config.compose import compose_config

    return compose_config(_overrides(args, out_dir))


def run_ours(args: argparse.Namespace, method: str) -> dict[str, Any]:
    from pipeline.steps import method_train_config, prepare_model, run_training

    out = tempfile.mkdtemp(prefix="vs_trl_ours_")
    pcfg = _compose(args, out)
    prepare_model(pcfg)  # the prepare_model stage: writes the dequantized model once
    tcfg = method_train_config(pcfg, method, [f"trainer.output_dir={out}"])
    tcfg = dataclasses.replace(tcfg, tracking=dataclasses.replace(tcfg.tracking, backend="null"))
    # Scoring passes (policy, reference, gradient): INTUITOR's reward must not add one. Counted over the
    # whole run (equal micro-batches every step, whatever the completion lengths).
    calls = [0]

    def count(module: torch.nn.Module, _inputs: Any) -> None:
        calls[0] += type(module).__name__ == "CompletionScorer"

    hook = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        result = run_training(tcfg, show_progress=False)  # step 0 is the warm-up (engine start-up)
    finally:
        hook.remove()
    timed = result.history[1:]
    return {
        "impl": f"ours-{method}",
        "step_s": [m["time/step_s"] for m in timed],
        "rollout_tok_s": [m["throughput/rollout_tokens_per_s"] for m in timed],
        "length": statistics.mean(m["completion/length_mean"] for m in timed),
        "scoring_calls": calls[0],
        "warmup_step_s": result.history[0]["time/step_s"],
        "peak_rss_gb": _peak_rss_gb(),
        "precision": result.mixed_precision,
        "engine": tcfg.rollout.engine,
        "phases": {
            k: statistics.median(m[f"time/{k}_s"] for m in timed) for k in ("rollout", "score", "update")
        },
    }


def run_trl(args: argparse.Namespace, micro_batch: int) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from pipeline.eval.math_grader import grade
    from pipeline.modeling.models import load_model_and_tokenizer
    from pipeline.tasks.training import load_prompts

    torch.set_num_threads(args.threads)
    # ours' model and data sections (MATH train, its first PROMPTS x (steps + 1) records)
    pcfg = _compose(args, tempfile.mkdtemp(prefix="vs_trl_trl_cfg_"))
    policy, tokenizer = load_model_and_tokenizer(pcfg.model)
    prompts = load_prompts(pcfg.data, pcfg.model.system_prompt)
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
        bf16=_trl_bf16(args.trl_bf16),  # autocast over fp32 weights where it is the faster, as ours
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
        "precision": "bf16" if config.bf16 else "fp32",
        "step_s": timer.steps[1:],
        "length": statistics.mean(timer.lengths[1:]) if len(timer.lengths) > 1 else float("nan"),
        # TRL times no rollout separately: completion tokens over the whole step, a lower bound.
        "rollout_tok_s": [
            COMPLETIONS * n / s for n, s in zip(timer.lengths[1:], timer.steps[1:], strict=False)
        ],
        "peak_rss_gb": _peak_rss_gb(),
    }


def _trl_bf16(setting: str) -> bool:
    """TRL's precision: `auto` is ours' rule (bf16 autocast where the CPU has bf16 matrix units)."""
    from pipeline.modeling.precision import resolve_mixed_precision

    if setting == "auto":
        return resolve_mixed_precision("auto", "cpu") == "bf16"
    return setting == "yes"


def _worker(args: argparse.Namespace) -> None:
    kind, _, value = args.worker.partition(":")
    result = run_ours(args, value) if kind == "ours" else run_trl(args, int(value))
    print("RESULT " + json.dumps(result), flush=True)


def _ordered_data(args: argparse.Namespace, folder: Path, scratch: Path) -> None:
    """A MATH train file holding the records ours draws, in the order its sampler draws them."""
    from pipeline.data.jsonl import read_records
    from pipeline.data.sampler import PromptSampler

    limit = PROMPTS * (args.steps + 1)
    source = Path(os.environ["INTUITOR_DATA_DIR"]) / "math" / "train.jsonl"
    records = read_records(source)[:limit]
    pcfg = _compose(args, tempfile.mkdtemp(prefix="vs_trl_cfg_", dir=scratch))
    from pipeline.tasks.training import load_prompts

    prompts = load_prompts(pcfg.data, pcfg.model.system_prompt)
    if len(prompts) != limit:
        raise SystemExit(f"{source}: {limit - len(prompts)} of the first {limit} records were skipped")
    index = {p.id: i for i, p in enumerate(prompts)}
    sampler = PromptSampler(prompts, PROMPTS, pcfg.trainer.seed)
    order = [index[p.id] for step in range(args.steps + 1) for p in sampler.batch(step)]
    (folder / "math").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(records[i]) for i in order]
    (folder / "math" / "train.jsonl").write_text("\n".join(lines) + "\n")


def _baseline_tree(rev: str, scratch: Path) -> Path:
    """`git archive` of the baseline commit, extracted to a folder under scratch."""
    tree = Path(tempfile.mkdtemp(prefix=f"vs_trl_{rev}_", dir=scratch))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def _launch(
    worker: str, args: argparse.Namespace, ordered: Path, baseline: Path | None, scratch: Path
) -> dict[str, Any]:
    kind = worker.partition(":")[0]
    script = (baseline if kind == "base" else ROOT) / "bench" / "vs_trl.py"
    argv = [sys.executable, str(script), "--worker", worker.replace("base:", "ours:")]
    argv += ["--steps", str(args.steps), "--new-tokens", str(args.new_tokens), "--threads", str(args.threads)]
    argv += ["--model-cache", str(Path(args.model_cache).resolve())]
    if kind == "trl":
        argv += ["--trl-bf16", args.trl_bf16]
    if kind == "ours":
        argv += [f"--override={o}" for o in args.override]
    # the worker's temporary folders (checkpoints, configs: ~2 GB a run) go under scratch, removed at the end
    env = dict(os.environ, TMPDIR=str(scratch))
    if kind != "ours":  # TRL and the baseline read the records in ours' order, from file order
        env["INTUITOR_DATA_DIR"] = str(ordered)
    if kind == "base":  # the baseline's own package, not this checkout's editable install
        env["PYTHONPATH"] = str(baseline)
    cwd = baseline if kind == "base" else ROOT
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{worker} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    if kind == "base":
        result["impl"] = "base-grpo"
    print(
        f"  {result['impl']}: steps {', '.join(f'{s:.1f}' for s in result['step_s'])} s, "
        f"peak RSS {result['peak_rss_gb']:.1f} GB"
        + ("".join(f", {k} {v:.1f} s" for k, v in result["phases"].items()) if "phases" in result else "")
        + (f", {result['engine']}" if "engine" in result else "")
        + (f", {result['precision']}" if "precision" in result else ""),
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
    ap.add_argument("--trl-bf16", choices=("auto", "yes", "no"), default="auto", help="TRL's bf16=...")
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit to compare with ('' = none)")
    ap.add_argument("--override", action="append", default=[], help="extra conf/ override for ours")
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args)
        return
    Path(args.model_cache).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vs_trl_") as tmp:
        scratch = Path(tmp)
        ordered = Path(tempfile.mkdtemp(prefix="vs_trl_data_", dir=scratch))
        _ordered_data(args, ordered, scratch)
        baseline = _baseline_tree(args.baseline, scratch) if args.baseline else None
        trl = [f"trl:{m}" for m in args.trl_micro_batches.split(",") if m]
        workers = ["ours:grpo", *trl, *(["base:grpo"] if baseline else [])]
        runs: list[list[dict[str, Any]]] = []
        for r in range(args.rounds):
            order = workers if r % 2 == 0 else workers[::-1]
            print(f"round {r + 1}: {' '.join(order)}", flush=True)
            runs.append([_launch(w, args, ordered, baseline, scratch) for w in order])
        intuitor = _launch("ours:intuitor", args, ordered, baseline, scratch)
    _summary(args, runs, intuitor)


def _summary(args: argparse.Namespace, runs: list[list[dict[str, Any]]], intuitor: dict[str, Any]) -> None:
    def median(impl: str, key: str = "step_s") -> float:
        return statistics.median(x for rnd in runs for res in rnd if res["impl"] == impl for x in res[key])

    def per_round(peer: str) -> list[float]:
        out = []
        for rnd in runs:
            by = {res["impl"]: statistics.median(res["step_s"]) for res in rnd}
            out.append(by[peer] / by["ours-grpo"])
        return out

    impls = sorted({res["impl"] for rnd in runs for res in rnd})
    trl_impls = [i for i in impls if i.startswith("trl-")]
    first = {res["impl"]: res for rnd in runs for res in rnd}
    ours = first["ours-grpo"]
    print(f"ours: engine {ours['engine']}, precision {ours['precision']}, phases {ours['phases']}")
    for impl in impls:
        print(
            f"  {impl}: median {median(impl):.1f} s/step, mean completion "
            f"{first[impl].get('length', float('nan')):.1f} tokens, "
            f"peak RSS {first[impl]['peak_rss_gb']:.1f} GB"
        )
    fields = [f"ours_grpo_s={median('ours-grpo'):.1f}", f"ours_rss_gb={ours['peak_rss_gb']:.1f}"]
    if trl_impls:
        best = min(trl_impls, key=median)
        ratios = per_round(best)
        print(f"per-round ratio {best}/ours: {', '.join(f'{x:.2f}' for x in ratios)}")
        fields += [
            f"trl_best={best}",
            f"trl_s={median(best):.1f}",
            f"ratio_trl_over_ours={statistics.median(ratios):.2f}",
            f"trl_rss_gb={first[best]['peak_rss_gb']:.1f}",
        ]
    if "base-grpo" in impls:
        ratios = per_round("base-grpo")
        print(f"per-round ratio base({args.baseline})/ours: {', '.join(f'{x:.2f}' for x in ratios)}")
        fields += [f"base_s={median('base-grpo'):.1f}"]
        fields += [f"ratio_base_over_ours={statistics.median(ratios):.2f}"]
    grpo_calls = ours["scoring_calls"]
    print(
        f"ours INTUITOR: {statistics.median(intuitor['step_s']):.1f} s/step; scoring passes' micro-batch "
        f"calls over the run: INTUITOR {intuitor['scoring_calls']}, GRPO {grpo_calls}"
    )
    fields += [
        f"ours_rollout_tok_s={median('ours-grpo', 'rollout_tok_s'):.0f}",
        f"intuitor_s={statistics.median(intuitor['step_s']):.1f}",
        f"intuitor_scoring_calls={intuitor['scoring_calls']}",
        f"grpo_scoring_calls={grpo_calls}",
    ]
    print("SUMMARY vs_trl " + " ".join(fields))


if __name__ == "__main__":
    main()
