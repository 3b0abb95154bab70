"""Evaluation of the tiny model on real GSM8K / MATH500 items and the embedded arith split."""

from __future__ import annotations

import json

import pytest
from smoke_config import benchmark_config, data_config

from pipeline.eval.runner import evaluate_prompts, save_evaluation
from pipeline.eval.stats import wilson_interval
from pipeline.modeling.models import tiny_random_model
from pipeline.tasks import load_benchmark

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "fallback"), [("gsm8k", "last_number"), ("math500", "none"), ("arith", "last_number")]
)
def test_benchmark_evaluates_and_records(tmp_path, tokenizer, name: str, fallback: str) -> None:
    bench = benchmark_config(name, limit=5, seed=3, max_new_tokens=6, batch_size=4)
    prompts = load_benchmark(bench, data_config(test_size=12), "SYS")
    assert len(prompts) == 5 and all(p.answer_fallback == fallback and p.gold for p in prompts)
    assert [p.id for p in prompts] == [p.id for p in load_benchmark(bench, data_config(test_size=12), "SYS")]
    records, metrics = evaluate_prompts(tiny_random_model(), tokenizer, prompts, bench, show_progress=False)
    assert metrics["n"] == 5 and len(records) == 5
    assert (metrics["ci95_low"], metrics["ci95_high"]) == wilson_interval(
        sum(r["correct"] for r in records), 5
    )
    for r in records:
        assert set(r) >= {"prompt", "completion", "extracted", "correct", "self_certainty", "gold"}
        assert r["self_certainty"] > 0
    save_evaluation(tmp_path, records, metrics)
    assert json.loads((tmp_path / "metrics.json").read_text())["n"] == 5
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 5


def test_wilson_interval_known_values() -> None:
    # 8/10: Wilson 95% interval (0.490, 0.943) as tabulated (Newcombe 1998, method 3)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


@pytest.mark.parametrize(
    ("name", "split", "metric"),
    [
        ("humaneval", "test", "pass_at_1"),
        ("cruxeval", "test", "accuracy"),
        ("livecodebench", "test", "pass_at_1_public"),
        ("mmlu_pro", "test", "accuracy"),
        ("alpaca_eval", "eval", "lc_win_rate"),
    ],
)
def test_every_benchmark_runs_end_to_end_on_the_tiny_model(tmp_path, tokenizer, name, split, metric) -> None:
    from pipeline.data.records import read_prompts, write_prompts

    bench = benchmark_config(name, split=split, limit=2, seed=1, max_new_tokens=8, batch_size=2)
    prompts = load_benchmark(bench, data_config(), "SYS")
    # the data stage's jsonl round trip keeps everything the grader needs
    write_prompts(prompts, tmp_path / "items.jsonl")
    prompts = read_prompts(tmp_path / "items.jsonl")
    records, metrics = evaluate_prompts(
        tiny_random_model(),
        tokenizer,
        prompts,
        bench,
        show_progress=False,
        out_dir=tmp_path,
        model_name="tiny",
    )
    assert metrics["metric"] == metric and metrics["n"] == 2 and len(records) == 2
    # generation runs longest prompt first; records come back in dataset order
    assert [r["id"] for r in records] == [p.id for p in prompts]
    assert all(r["correct"] is False for r in records)  # a random model solves nothing
    save_evaluation(tmp_path, records, metrics)
    assert json.loads((tmp_path / "metrics.json").read_text())["benchmark"] == name
