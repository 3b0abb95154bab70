"""The evaluation runner on the tiny model: pass@k sampling, stop strings, verbatim prompts, categories."""

from __future__ import annotations

import pytest
import torch
from smoke_config import benchmark_config, data_config

from pipeline.eval.runner import evaluate_prompts
from pipeline.eval.stats import pass_at_k
from pipeline.modeling.models import prompt_ids, tiny_random_model
from pipeline.rollout.hf import HFRolloutEngine, cut_at_stop
from pipeline.tasks import get_benchmark, load_benchmark
from pipeline.types import Prompt

pytestmark = pytest.mark.integration


def test_cut_at_stop_takes_the_earliest_stop_string() -> None:
    assert cut_at_stop("a Question: b Answer: c", ["Answer:", "Question:"]) == "a "
    assert cut_at_stop("no stop here", ["Question:"]) == "no stop here"
    assert cut_at_stop("x", []) == "x"


def test_verbatim_prompts_skip_the_chat_template(tokenizer) -> None:
    raw = Prompt(id="r", messages=[{"role": "user", "content": "Q: 1+1?"}], text="Q: 1+1?")
    chat = Prompt(id="c", messages=[{"role": "user", "content": "Q: 1+1?"}])
    assert tokenizer.decode(prompt_ids(tokenizer, raw)) == "Q: 1+1?"
    assert "<|im_start|>" in tokenizer.decode(prompt_ids(tokenizer, chat))


def test_sampled_pass_at_k_agrees_with_the_per_sample_records(tokenizer) -> None:
    bench = benchmark_config(
        "arith", limit=4, max_new_tokens=6, batch_size=8, n_samples=3, pass_k=[1, 2, 3], temperature=1.0
    )
    prompts = load_benchmark(bench, data_config(test_size=12), None)
    model = tiny_random_model()
    records, metrics = evaluate_prompts(model, tokenizer, prompts, bench, show_progress=False)
    assert len(records) == 12 and metrics["n"] == 4 and metrics["n_completions"] == 12
    assert sorted({r["sample"] for r in records}) == [0, 1, 2]
    correct = {p.id: sum(r["correct"] for r in records if r["id"] == p.id) for p in prompts}
    for k in (1, 2, 3):
        expected = sum(pass_at_k(3, c, k) for c in correct.values()) / 4
        assert metrics[f"pass_at_{k}"] == pytest.approx(expected)
    assert metrics["score"] == pytest.approx(sum(correct.values()) / 12)
    # sampled completions differ between samples of one prompt (a random model at T=1)
    texts = [r["completion"] for r in records if r["id"] == prompts[0].id]
    assert len(set(texts)) > 1


def test_an_engine_that_records_no_certainty_gets_it_from_a_scoring_pass(tokenizer) -> None:
    """vLLM records no self-certainty: the runner scores the completions instead. Here the HF engine with
    recording off stands in for it (same completions), so the two certainties of each answer meet:
    the one generate's logits gave and the scoring pass's, both fp32 (measured max relative diff 1e-7). A
    sharpened output layer makes certainty differ from token to token, so a misaligned or mis-masked
    pass shows."""
    bench = benchmark_config("arith", limit=6, max_new_tokens=12, batch_size=4)
    prompts = load_benchmark(bench, data_config(test_size=12), None)
    model = tiny_random_model()
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    recorded, metrics = evaluate_prompts(model, tokenizer, prompts, bench, show_progress=False)
    silent = HFRolloutEngine(model, tokenizer, show_progress=False, record_certainty=False)
    scored, scored_metrics = evaluate_prompts(
        model, tokenizer, prompts, bench, show_progress=False, engine=silent
    )
    assert [r["completion"] for r in scored] == [r["completion"] for r in recorded]
    assert len({r["length"] for r in recorded}) > 1  # ragged completions: the pass's masking matters
    for a, b in zip(scored, recorded, strict=True):
        assert a["self_certainty"] == pytest.approx(b["self_certainty"], rel=1e-4)
    assert scored_metrics["self_certainty_mean"] == pytest.approx(metrics["self_certainty_mean"], rel=1e-4)
    assert metrics["self_certainty_mean"] > 0


def test_stop_strings_end_completions_and_are_cut(tokenizer) -> None:
    bench = benchmark_config("arith", limit=3, max_new_tokens=24, batch_size=3)
    prompts = load_benchmark(bench, data_config(test_size=12), None)
    model = tiny_random_model()
    _, free = evaluate_prompts(model, tokenizer, prompts, bench, show_progress=False)
    records, _ = evaluate_prompts(model, tokenizer, prompts, bench, show_progress=False)
    # stop on a printable ASCII character the random model actually emits mid-completion
    i, stop = next(
        (i, ch) for i, r in enumerate(records) for ch in r["completion"][1:] if ch.isascii() and ch.isalnum()
    )
    text = records[i]["completion"]
    stopped = benchmark_config("arith", limit=3, max_new_tokens=24, batch_size=3, stop=[stop])
    recs, _ = evaluate_prompts(model, tokenizer, prompts, stopped, show_progress=False)
    assert stop not in recs[i]["completion"]
    assert recs[i]["completion"] == text[: text.index(stop)]
    assert recs[i]["length"] < records[i]["length"] and not recs[i]["clipped"]
    assert free["n"] == 3


def test_categories_split_the_headline_metric(tokenizer) -> None:
    bench = benchmark_config("math500", limit=6, max_new_tokens=4, batch_size=6)
    prompts = load_benchmark(bench, data_config(), None)
    assert get_benchmark("math500").category_key == "subject"
    _, metrics = evaluate_prompts(tiny_random_model(), tokenizer, prompts, bench, show_progress=False)
    per = metrics["per_category"]
    assert sum(row["n"] for row in per.values()) == 6
    assert set(per) == {p.meta["subject"] for p in prompts}


def test_unjudged_alpaca_eval_reports_no_number(tmp_path, tokenizer) -> None:
    bench = benchmark_config("alpaca_eval", split="eval", limit=3, max_new_tokens=4, batch_size=3)
    prompts = load_benchmark(bench, data_config(), None)
    records, metrics = evaluate_prompts(
        tiny_random_model(), tokenizer, prompts, bench, show_progress=False, out_dir=tmp_path, model_name="m"
    )
    assert metrics["status"] == "not judged" and metrics["n"] == 3
    assert metrics["score"] is None and metrics["lc_win_rate"] is None
    assert "ci95_low" not in metrics and "pass_at_1" not in metrics
    assert (tmp_path / "model_outputs.json").is_file() and len(records) == 3
    with pytest.raises(ValueError, match="out_dir"):
        evaluate_prompts(tiny_random_model(), tokenizer, prompts, bench, show_progress=False)
