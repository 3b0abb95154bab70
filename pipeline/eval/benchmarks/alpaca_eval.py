"""AlpacaEval 2: length-controlled win rate against gpt4_1106_preview, judged pairwise by an API model.

There is no per-item correctness, so `grade` marks every completion "not_judged". The headline number
comes from the benchmark-level hook `judge_outputs`, which the runner calls once with all completions:
it always saves `model_outputs.json` in alpaca_eval's own format (so the outputs can be judged later,
e.g. with `alpaca_eval evaluate --model_outputs ...`), and judges only when `judge.base_url` is set.
Without a judge the result says "not judged" with null numbers: never a made-up score.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.atomic import write_json_atomic
from pipeline.config import BenchmarkConfig, ConfigError, DataConfig
from pipeline.data.alpaca_eval import load_alpaca_eval
from pipeline.data.screen import RecordScreen
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.judge import JudgeError, judge_pairwise
from pipeline.eval.verdict import Verdict
from pipeline.types import Prompt


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data, screen  # no math-verify gold to screen (load_benchmark counts the items)
    return load_alpaca_eval(bench.path, bench.split, system_prompt)


def grade(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    del bench
    _check_lengths(prompts, completions)
    return [Verdict(correct=False, extracted=None, source="not_judged") for _ in completions]


def model_outputs(prompts: list[Prompt], completions: list[str], generator_name: str) -> list[dict[str, str]]:
    """alpaca_eval's model_outputs records: instruction, output, generator, dataset."""
    _check_lengths(prompts, completions)
    return [
        {
            "instruction": p.messages[-1]["content"],
            "output": c,
            "generator": generator_name,
            "dataset": p.meta["dataset"],
        }
        for p, c in zip(prompts, completions, strict=True)
    ]


def judge_outputs(
    prompts: list[Prompt],
    completions: list[str],
    bench: BenchmarkConfig,
    generator_name: str,
    out_dir: Path,
) -> dict[str, Any]:
    """Save out_dir/model_outputs.json; judge against the reference outputs when a judge is configured.

    Returns {"status": "judged" | "not judged", "lc_win_rate", "win_rate", "n", ...}; win rates are in
    percent (0-100), as alpaca_eval reports them. Judge files go under out_dir/judge/.
    """
    outputs = model_outputs(prompts, completions, generator_name)
    write_json_atomic(Path(out_dir) / "model_outputs.json", outputs)
    judge = bench.judge
    if judge is None:
        raise ConfigError(
            f"benchmark {bench.name!r}: no `judge` section (conf/eval/alpaca_eval.yaml has one)"
        )
    result: dict[str, Any] = {
        "status": "not judged",
        "lc_win_rate": None,
        "win_rate": None,
        "n": len(outputs),
        "judge_model": judge.model,
        "annotators_config": judge.annotators_config,
    }
    if judge.base_url is None:
        result["reason"] = "judge.base_url is null: outputs saved for a later judge run"
        return result
    api_key = os.environ.get(judge.api_key_env)
    if not api_key:
        raise JudgeError(
            f"benchmarks.{bench.name}.judge: environment variable {judge.api_key_env} is not set "
            f"(it must hold the API key of {judge.base_url})"
        )
    references = [
        {
            "instruction": p.messages[-1]["content"],
            "output": p.meta["reference_output"],
            "generator": p.meta["reference_generator"],
            "dataset": p.meta["dataset"],
        }
        for p in prompts
    ]
    indices = [int(p.meta["index"]) for p in prompts]
    metrics = judge_pairwise(outputs, references, indices, judge, api_key, Path(out_dir) / "judge")
    result.update(metrics, status="judged")
    return result


def _check_lengths(prompts: list[Prompt], completions: list[str]) -> None:
    if len(prompts) != len(completions):
        raise ValueError(f"alpaca_eval: {len(prompts)} prompts but {len(completions)} completions")


BENCHMARK = Benchmark(
    name="alpaca_eval", load=load, grade=grade, metric="lc_win_rate", summarize=judge_outputs
)
