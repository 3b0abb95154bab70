"""AlpacaEval 2: length-controlled win rate against gpt4_1106_preview, judged pairwise by an API model.

There is no per-item correctness, so `grade` marks every completion "not_judged". The headline number
comes from the benchmark-level hook `judge_outputs`, which the runner calls once with all completions:
it always saves `model_outputs.json` in alpaca_eval's own format (so the outputs can be judged later,
e.g. with `alpaca_eval evaluate --model_outputs ...`), and judges only when `judge.base_url` is set.
Without a judge the result says "not judged" with null numbers: never a made-up score.

Data: AlpacaEval 2.0 (`tatsu-lab/alpaca_eval`, config alpaca_eval_gpt4_baseline, split eval): 805
instructions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.atomic import write_json_atomic
from pipeline.config import BenchmarkConfig, ConfigError, DataConfig
from pipeline.data.jsonl import DataError
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.eval.judge import JudgeError, judge_pairwise
from pipeline.eval.verdict import Verdict
from pipeline.tasks import Benchmark
from pipeline.types import Prompt

HUB_ID = "tatsu-lab/alpaca_eval"
HUB_CONFIG = "alpaca_eval_gpt4_baseline"
# Offline copy: the reference model's outputs file, which holds the instructions (data README section 7).
FILE_NAME = "alpaca_eval_gpt4_baseline.json"
_FIELDS = ("instruction", "output", "generator", "dataset")


def load_alpaca_eval(
    path: str | None, split: str = "eval", system_prompt: str | None = None, limit: int | None = None
) -> list[Prompt]:
    """Every instruction in dataset order, as chat prompts; meta holds the reference output for the judge.

    `path`: null ($INTUITOR_DATA_DIR/alpaca_eval/ or the hub), the reference-outputs json file, a folder
    holding it, or a hub id.
    """
    if path is not None and Path(path).is_dir():
        path = str(Path(path) / FILE_NAME)
    records, source = load_split(
        "alpaca_eval", path, split, HUB_ID, hub_config=HUB_CONFIG, local_file=f"alpaca_eval/{FILE_NAME}"
    )
    prompts = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        # A json array has no lines to name: errors give the record's position instead.
        missing = [f for f in _FIELDS if not isinstance(rec.get(f), str)]
        if missing:
            present = sorted(k for k in rec if not k.startswith("_"))
            raise DataError(f"{source}: record {i}: lacks string field(s) {missing} (has {present})")
        prompts.append(
            Prompt(
                id=f"alpaca_eval/{split}/{i}",
                messages=chat_messages(rec["instruction"], system_prompt),
                meta={
                    "dataset": rec["dataset"],
                    "index": i,
                    "reference_output": rec["output"],
                    "reference_generator": rec["generator"],
                },
            )
        )
    return prompts


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
