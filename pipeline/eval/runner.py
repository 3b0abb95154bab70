"""Evaluate one model on one benchmark: greedy decoding, grading, per-sample records, metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pipeline.atomic import write_json_atomic, write_text_atomic
from pipeline.config import BenchmarkConfig, SamplingConfig
from pipeline.eval.math_grader import grade
from pipeline.eval.stats import wilson_interval
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.types import Prompt


def evaluate_prompts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[Prompt],
    bench: BenchmarkConfig,
    show_progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Greedy completions graded with the shared math grader: (per-sample records, metrics)."""
    if not prompts:
        raise ValueError(f"benchmark {bench.name!r} has no items to evaluate")
    engine = HFRolloutEngine(model, tokenizer, show_progress=show_progress, record_certainty=True)
    sampling = SamplingConfig(
        temperature=0.0, max_new_tokens=bench.max_new_tokens, batch_size=bench.batch_size
    )
    t0 = time.perf_counter()
    groups = engine.generate(prompts, 1, sampling, seed=bench.seed)
    wall = time.perf_counter() - t0
    records = []
    for g in groups:
        text = g.texts[0]
        verdict = grade(text, g.prompt.gold, g.prompt.answer_fallback)
        length = int(g.completion_mask[0].sum())
        ended = length > 0 and int(g.completion_ids[0, length - 1]) in engine.eos_ids
        records.append(
            {
                "id": g.prompt.id,
                "prompt": g.prompt.messages[-1]["content"],
                "gold": g.prompt.gold,
                "completion": text,
                "extracted": verdict.extracted,
                "extraction": verdict.source,
                "correct": verdict.correct,
                "self_certainty": float(g.self_certainty[0]) if g.self_certainty is not None else None,
                "length": length,
                "clipped": not ended,
            }
        )
    n = len(records)
    correct = sum(r["correct"] for r in records)
    low, high = wilson_interval(correct, n)
    metrics = {
        "benchmark": bench.name,
        "n": n,
        "accuracy": correct / n,
        "ci95_low": low,
        "ci95_high": high,
        "answer_rate": sum(r["extracted"] is not None for r in records) / n,
        "boxed_rate": sum(r["extraction"] == "boxed" for r in records) / n,
        "fallback_rate": sum(r["extraction"] == "last_number" for r in records) / n,
        "self_certainty_mean": sum(r["self_certainty"] or 0.0 for r in records) / n,
        "length_mean": sum(r["length"] for r in records) / n,
        "clipped_ratio": sum(r["clipped"] for r in records) / n,
        "wall_s": wall,
    }
    return records, metrics


def save_evaluation(out_dir: Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
    write_text_atomic(out_dir / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write_json_atomic(out_dir / "metrics.json", metrics)
