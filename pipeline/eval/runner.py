"""Evaluate one model on one benchmark: generate, grade with the benchmark's grader, score, save.

Greedy decoding (n_samples = 1, the paper's setting) or n samples per item for pass@k. Every completion
becomes one record of samples.jsonl; metrics.json holds the headline metric with its 95% interval, the
sample counts, pass@k, per-category scores where the benchmark has categories, and the wall times.

Generation and grading go in chunks of whole generate batches (`generate_batch`) of the
length-sorted prompts; with a partial file (pipeline/eval/partial.py) each chunk is saved as it
completes, so a killed run resumes where it stopped. Timings (generate_s, grade_s, wall_s) are this
invocation's: a resumed run does not count the chunks it took from the partial file (`resumed_items`
says how many items those held).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pipeline.atomic import write_json_atomic, write_text_atomic
from pipeline.config import BenchmarkConfig, SamplingConfig
from pipeline.eval.partial import PartialSamples, fingerprint
from pipeline.eval.stats import mean_interval, pass_at_k, wilson_interval
from pipeline.eval.verdict import Verdict
from pipeline.faults import fault_point
from pipeline.modeling.precision import autocast
from pipeline.rl.batch import collate_groups
from pipeline.rl.scoring import masked_sequence_mean, score_completions
from pipeline.rollout.base import RolloutEngine
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.tasks import Benchmark, get_benchmark
from pipeline.types import Prompt, RolloutGroup


def sampling_for(bench: BenchmarkConfig) -> SamplingConfig:
    """Greedy for one sample per item; the configured temperature / top-p for pass@k sampling."""
    greedy = bench.n_samples == 1
    return SamplingConfig(
        temperature=0.0 if greedy else bench.temperature,
        top_p=1.0 if greedy else bench.top_p,
        max_new_tokens=bench.max_new_tokens,
        batch_size=bench.batch_size,
        stop=list(bench.stop),
    )


def generate_batch(bench: BenchmarkConfig, engine: RolloutEngine | None) -> int:
    """Sequences per generate call. HF generate pads one fixed batch until its longest completion ends:
    the benchmark's batch_size. An engine that schedules its own batches (vLLM, `max_num_seqs`: up to
    rollout.batch_size sequences at once, each leaving as it ends) takes that many per call: in chunks
    of the benchmark's batch_size it would decode each chunk to its longest completion at a small batch,
    reading every weight once per token for few rows (measured on the demo: bench/README.md)."""
    own = getattr(engine, "max_num_seqs", None)
    return max(bench.batch_size, own) if own else bench.batch_size


def chunk_prompts(batch_size: int, n_samples: int) -> int:
    """Prompts per chunk: the fewest whose k * n_samples completions fill whole generate batches, so a
    chunked run batches (and pads) every completion exactly as one generate call over all would."""
    bs = max(1, batch_size)  # as HFRolloutEngine.generate
    return bs // math.gcd(bs, n_samples)


def evaluate_prompts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[Prompt],
    bench: BenchmarkConfig,
    show_progress: bool = True,
    out_dir: Path | None = None,
    model_name: str = "model",
    partial: Path | None = None,
    model_fingerprint: Mapping[str, Any] | None = None,
    precision: str = "no",
    engine: RolloutEngine | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(per-completion records, metrics). `out_dir` receives benchmark-level files (a judge's outputs).

    With `partial` (a path outside DVC's outputs), each chunk is appended there once generated and
    graded, and chunks a killed earlier run completed with the same benchmark, prompts and
    `model_fingerprint` (weights digest, dtype, device) are taken from it instead of generated again;
    the caller deletes it once the results are saved. The output does not depend on where a run was
    killed: chunks are whole generate batches at their one-shot seeds.
    `precision` (no or bf16, resolved) is the autocast generation runs under, as in training.
    `engine` decodes (default: the HF engine on `model`, which records each answer's self-certainty
    while it generates, as the evaluation's vLLM engine does); for an engine that recorded none (a
    vLLM engine without record_certainty, or one that missed a position), a scoring pass of `model`
    over the chunk's completions computes it, under the same autocast.
    """
    if not prompts:
        raise ValueError(f"benchmark {bench.name!r} has no items to evaluate")
    if bench.n_samples < 1 or any(not 1 <= k <= bench.n_samples for k in bench.pass_k):
        raise ValueError(
            f"benchmarks.{bench.name}: need n_samples >= 1 and every pass_k in [1, n_samples]; "
            f"got n_samples={bench.n_samples}, pass_k={bench.pass_k}"
        )
    spec = get_benchmark(bench.name)
    # The item bar below reports progress; a per-chunk batch bar inside it would only flicker.
    if engine is None:
        engine = HFRolloutEngine(model, tokenizer, show_progress=False, record_certainty=True)
    t0 = time.perf_counter()
    # Batch prompts of similar length together: left padding to the longest prompt of a batch costs
    # every row of it at each decode step. Greedy completions do not depend on the batch they are in.
    order = sorted(range(len(prompts)), key=lambda i: _prompt_chars(prompts[i]), reverse=True)
    k = chunk_prompts(generate_batch(bench, engine), bench.n_samples)
    chunks = [order[s : s + k] for s in range(0, len(order), k)]
    store = None
    if partial is not None:
        if model_fingerprint is None:
            raise ValueError("a partial samples file needs model_fingerprint (what identifies the model)")
        header = {"benchmark": bench.name, "model": model_name, "n_items": len(prompts), "chunk_items": k}
        store = PartialSamples.open(partial, fingerprint(bench, prompts, model_fingerprint), header)
    done = store.chunks if store is not None else {}
    resumed = sum(len(chunk) for c, chunk in enumerate(chunks) if c in done)
    by_item: list[list[dict[str, Any]]] = [[] for _ in prompts]
    generate_s = grade_s = 0.0
    bar = tqdm(
        total=len(prompts), initial=resumed, desc=f"eval {bench.name}", unit="item", disable=not show_progress
    )
    try:
        for c, chunk in enumerate(chunks):
            got = done.get(c)
            if got is None:
                t1 = time.perf_counter()
                # first_prompt = the chunk's offset in the sorted order: the one-shot run's seeds.
                with autocast(precision, next(model.parameters()).device.type):
                    groups = engine.generate(
                        [prompts[i] for i in chunk], bench.n_samples, sampling_for(bench), bench.seed, c * k
                    )
                    groups = with_certainty(model, groups, engine.pad_id)
                t2 = time.perf_counter()
                flat = [(g.prompt, t) for g in groups for t in g.texts]
                verdicts = spec.grade([p for p, _ in flat], [t for _, t in flat], bench)
                generate_s, grade_s = generate_s + t2 - t1, grade_s + time.perf_counter() - t2
                got = _records(groups, verdicts, engine.eos_ids, bench)
                fault_point("eval_batch", c)  # reliability tests: killed with this chunk not yet saved
                if store is not None:
                    store.append(c, [prompts[i].id for i in chunk], got)
                bar.update(len(chunk))
            for j, i in enumerate(chunk):
                by_item[i] = got[j * bench.n_samples : (j + 1) * bench.n_samples]
    finally:
        bar.close()
        if store is not None:
            store.close()
    records = [r for rs in by_item for r in rs]
    metrics = score(spec, bench, prompts, records)
    metrics.update(generate_s=generate_s, grade_s=grade_s, resumed_items=resumed, mixed_precision=precision)
    if spec.summarize is not None:
        # Benchmark-level scoring that no single completion carries (AlpacaEval's judged win rate): it
        # replaces the per-item headline, which for such a benchmark would be a meaningless 0.
        if out_dir is None:
            raise ValueError(f"benchmark {bench.name!r} writes benchmark-level files: pass out_dir")
        for key in ("ci95_low", "ci95_high", *(f"pass_at_{k}" for k in bench.pass_k)):
            metrics.pop(key, None)
        flat_prompts = [p for p in prompts for _ in range(bench.n_samples)]
        flat_texts = [r["completion"] for r in records]
        metrics.update(spec.summarize(flat_prompts, flat_texts, bench, model_name, out_dir))
        metrics["score"] = metrics.get(spec.metric)
    metrics["wall_s"] = time.perf_counter() - t0
    return records, metrics


@torch.no_grad()
def with_certainty(model: PreTrainedModel, groups: list[RolloutGroup], pad_id: int) -> list[RolloutGroup]:
    """`groups` with each completion's mean self-certainty (raw logits, EOS included: what the HF
    engine records while generating) from one scoring pass of `model` where the engine recorded none."""
    if all(g.self_certainty is not None for g in groups):
        return groups
    batch = collate_groups(groups, pad_id)
    device = model.device
    mask = batch.completion_mask.to(device)  # [N, C]
    scores = score_completions(
        model, batch.input_ids.to(device), batch.attention_mask.to(device), batch.prompt_length, mask
    )
    per_completion = masked_sequence_mean(scores.self_certainty, mask)  # [N]
    n = batch.group_size
    return [
        dataclasses.replace(g, self_certainty=per_completion[i * n : (i + 1) * n].double().cpu())
        for i, g in enumerate(groups)
    ]


def _records(
    groups: list[RolloutGroup], verdicts: list[Verdict], eos_ids: list[int], bench: BenchmarkConfig
) -> list[dict[str, Any]]:
    """One record per completion, in the groups' order."""
    if len(verdicts) != sum(len(g.texts) for g in groups):
        raise RuntimeError(
            f"grader of {bench.name!r} returned {len(verdicts)} verdicts for "
            f"{sum(len(g.texts) for g in groups)} completions"
        )
    records = []
    it = iter(verdicts)
    for g in groups:
        for j, text in enumerate(g.texts):
            v = next(it)
            length = int(g.completion_mask[j].sum())
            ended = length > 0 and int(g.completion_ids[j, length - 1]) in eos_ids
            records.append(
                {
                    "id": g.prompt.id,
                    "sample": j,
                    "prompt": g.prompt.messages[-1]["content"],
                    "gold": g.prompt.gold,
                    "completion": text,
                    "extracted": v.extracted,
                    "extraction": v.source,
                    "correct": v.correct,
                    "detail": v.detail,
                    "self_certainty": float(g.self_certainty[j]) if g.self_certainty is not None else None,
                    "length": length,
                    # Hit the token budget without EOS (a stop string ends a completion earlier).
                    "clipped": not ended and length >= bench.max_new_tokens,
                }
            )
    return records


def _prompt_chars(prompt: Prompt) -> int:
    return len(prompt.text) if prompt.text is not None else sum(len(m["content"]) for m in prompt.messages)


def _headline(per_item: list[float], correct: int, n_items: int, n_samples: int) -> tuple[float, float]:
    """95% interval of the headline metric: Wilson for one sample per item, else over item means."""
    if n_samples == 1:
        return wilson_interval(correct, n_items)
    return mean_interval(per_item)


def score(
    spec: Benchmark, bench: BenchmarkConfig, prompts: list[Prompt], records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Headline metric (mean per-item pass rate), its interval, pass@k, per-category scores, rates."""
    n = bench.n_samples
    by_item: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        by_item[r["id"]].append(bool(r["correct"]))
    items = [by_item[p.id] for p in prompts]
    per_item = [sum(c) / n for c in items]
    total_correct = sum(sum(c) for c in items)
    value = sum(per_item) / len(items)
    low, high = _headline(per_item, total_correct, len(items), n)
    metrics: dict[str, Any] = {
        "benchmark": bench.name,
        "metric": spec.metric,
        spec.metric: value,
        "score": value,
        "ci95_low": low,
        "ci95_high": high,
        "n": len(items),
        "n_samples": n,
        "n_completions": len(records),
    }
    for k in bench.pass_k:
        metrics[f"pass_at_{k}"] = sum(pass_at_k(n, sum(c), k) for c in items) / len(items)
    if spec.category_key is not None:
        cats: dict[str, list[int]] = defaultdict(list)
        for p, c in zip(prompts, items, strict=True):
            cats[str(p.meta.get(spec.category_key, "unknown"))].append(sum(c))
        metrics["per_category"] = {
            cat: {"n": len(cs), spec.metric: sum(cs) / (n * len(cs))} for cat, cs in sorted(cats.items())
        }
    m = len(records)
    metrics.update(
        answer_rate=sum(r["extracted"] is not None for r in records) / m,
        extraction_counts=dict(sorted(Counter(str(r["extraction"]) for r in records).items())),
        self_certainty_mean=sum(r["self_certainty"] or 0.0 for r in records) / m,
        length_mean=sum(r["length"] for r in records) / m,
        clipped_ratio=sum(r["clipped"] for r in records) / m,
    )
    # Graders that classify each completion (the code graders: ok, wrong_answer, not_literal, timeout, ...)
    # put it in detail["status"]: counted here, so e.g. CRUXEval's non-literal predictions show in metrics.
    statuses = Counter(str(r["detail"]["status"]) for r in records if "status" in (r.get("detail") or {}))
    if statuses:
        metrics["status_counts"] = dict(sorted(statuses.items()))
    return metrics


def save_evaluation(out_dir: Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
    write_text_atomic(out_dir / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write_json_atomic(out_dir / "metrics.json", metrics)
