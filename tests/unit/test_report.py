"""The report: paper-style table from metrics files, and one PNG per curve with a line per method."""

from __future__ import annotations

import json
import math

import pytest

from pipeline.report import CURVES, results_table, write_report


def _metrics(root, model: str, bench: str, acc: float, n: int) -> None:
    d = root / model / bench
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(
        json.dumps({"accuracy": acc, "ci95_low": acc - 0.1, "ci95_high": acc + 0.1, "n": n})
    )


def test_table_rows_columns_and_missing_cells(tmp_path) -> None:
    ev = tmp_path / "eval"
    _metrics(ev, "base", "arith", 0.25, 120)
    _metrics(ev, "intuitor", "arith", 0.3, 120)
    _metrics(ev, "intuitor", "gsm8k", 0.5, 100)
    from pipeline.report import load_eval_metrics

    table = results_table(load_eval_metrics(ev), ["base", "intuitor", "grpo"], ["arith", "gsm8k"])
    lines = table.splitlines()
    assert lines[0] == "| model | arith (accuracy) | gsm8k (accuracy) |"
    assert lines[2] == "| base | 0.250 [0.15, 0.35] (n=120) | - |"
    assert lines[3] == "| intuitor | 0.300 [0.20, 0.40] (n=120) | 0.500 [0.40, 0.60] (n=100) |"
    assert lines[4] == "| grpo | - | - |"


def test_cells_name_the_metric_and_never_invent_a_score(tmp_path) -> None:
    ev = tmp_path / "eval"
    for bench, body in (
        ("humaneval", {"metric": "pass_at_1", "score": 0.125, "ci95_low": 0.08, "ci95_high": 0.19, "n": 164}),
        ("alpaca_eval", {"metric": "lc_win_rate", "score": None, "status": "not judged", "n": 100}),
    ):
        (ev / "base" / bench).mkdir(parents=True)
        (ev / "base" / bench / "metrics.json").write_text(json.dumps(body))
    from pipeline.report import load_eval_metrics

    lines = results_table(load_eval_metrics(ev), ["base"], ["humaneval", "alpaca_eval"]).splitlines()
    assert lines[0] == "| model | humaneval (pass_at_1) | alpaca_eval (lc_win_rate) |"
    assert lines[2] == "| base | 0.125 [0.08, 0.19] (n=164) | not judged (n=100) |"


def test_write_report_with_curves(tmp_path) -> None:
    ev, tr = tmp_path / "eval", tmp_path / "train"
    _metrics(ev, "base", "arith", 0.2, 10)
    for method, reward in (("intuitor", 12.0), ("grpo", 0.5)):
        (tr / method).mkdir(parents=True)
        rows = ["step,reward_mean,self_certainty_mean,completion_length_mean,gold_accuracy,kl"]
        rows += [f"{s},{reward + s},{11 + s},{80 - s},{0.1 * s}," for s in range(3)]
        (tr / method / "steps.csv").write_text("\n".join(rows) + "\n")
    text = write_report(ev, tr, tmp_path / "results" / "report.md", "demo", ["intuitor", "grpo"], ["arith"])
    assert text.startswith("# Report: demo")
    assert "| intuitor | 3 | 14.000 | 13.000 | 78.000 | 0.200 |" in text
    for _, _, name in CURVES:
        png = tmp_path / "results" / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"plots/{name}" in text


def _samples(root, model: str, bench: str, correct: list[bool], certainty: list[float]) -> None:
    d = root / model / bench
    d.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"q{i}", "sample": 0, "correct": ok, "self_certainty": sc}
        for i, (ok, sc) in enumerate(zip(correct, certainty, strict=True))
    ]
    (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_pairs_models_item_by_item_and_writes_the_summary(tmp_path) -> None:
    ev, tr = tmp_path / "eval", tmp_path / "train"
    n = 40
    base = [i < 8 for i in range(n)]  # 8 right
    grpo = [i < 20 for i in range(n)]  # the base's 8 and 12 more: 12 discordant, all one way
    intuitor = [i < 6 or 30 <= i < 32 for i in range(n)]  # 2 lost, 2 gained: no difference
    for model, correct in (("base", base), ("grpo", grpo), ("intuitor", intuitor)):
        # certainty ranks right answers above wrong ones for grpo only
        sc = [float(ok) + 0.01 * i if model == "grpo" else 1.0 for i, ok in enumerate(correct)]
        _samples(ev, model, "arith", correct, sc)
        acc = sum(correct) / n
        _metrics(ev, model, "arith", acc, n)
    (tr / "intuitor").mkdir(parents=True)
    rows = ["step,reward_mean,self_certainty_mean,completion_length_mean,gold_accuracy,gold_answer_rate"]
    rows += [f"{s},{10 + s},{11 + s},{80 - s},0.1,{1 - 0.1 * s}" for s in range(8)]
    (tr / "intuitor" / "steps.csv").write_text("\n".join(rows) + "\n")
    text = write_report(ev, tr, tmp_path / "results" / "report.md", "demo", ["intuitor", "grpo"], ["arith"])
    lines = text.splitlines()
    grpo_vs_base = next(x for x in lines if x.startswith("| arith | grpo | base |"))
    # exact McNemar of 12 vs 0: 2 / 2^12
    assert "+0.300" in grpo_vs_base and "| 12 / 0 |" in grpo_vs_base and f"| {2 / 4096:.3g} |" in grpo_vs_base
    # the fake intervals (acc +- 0.1) of 0.2 and 0.5 do not overlap
    assert grpo_vs_base.endswith("| **no** |")
    intuitor_vs_base = next(x for x in lines if x.startswith("| arith | intuitor | base |"))
    assert "+0.000" in intuitor_vs_base and "| 2 / 2 |" in intuitor_vs_base
    assert intuitor_vs_base.endswith("| 1 | yes |")
    assert any(x.startswith("| arith | intuitor | grpo |") for x in lines)
    assert not any(x.startswith("| arith | base | grpo |") for x in lines)  # the same pair once
    auroc_rows = {x.split(" | ")[1]: x for x in lines if x.startswith("| arith |") and x.count("|") == 6}
    assert "| 1.000 |" in auroc_rows["grpo"] and "| 0.500 |" in auroc_rows["intuitor"]
    trend = next(x for x in lines if x.startswith("| intuitor | 8 |") and "->" in x)
    # quarters of 8 steps: steps 0-1 and 6-7
    assert "10.500 -> 16.500" in trend and "0.950 -> 0.350" in trend
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())["headline"]
    assert summary == {
        "arith": {"base": 0.2, "intuitor": 0.2, "grpo": 0.5},
        "train": {"intuitor": {"reward": 17.0, "sc": 18.0, "len": 73.0}},
    }


def _rows(reward: list[float], acc: list[float], length: list[float]) -> list[dict[str, float]]:
    return [
        {
            "step": float(i),
            "reward_mean": r,
            "gold_accuracy": a,
            "gold_answer_rate": 1.0,
            "completion_length_mean": n,
        }
        for i, (r, a, n) in enumerate(zip(reward, acc, length, strict=True))
    ]


def test_exploitation_flags_a_reward_that_rises_while_accuracy_falls() -> None:
    import statistics

    from pipeline.curves import exploitation

    steps = 20
    reward = [float(i) for i in range(steps)]  # rises throughout
    wobble = [0.02, -0.02, 0.01, -0.01, 0.0]  # step-to-step noise, so windows have a standard error
    # accuracy holds at 0.5 for 10 steps, then drops to 0.1
    acc = [(0.5 if i < 10 else 0.1) + wobble[i % 5] for i in range(steps)]
    e = exploitation(_rows(reward, acc, [50.0] * steps))
    assert e["gold_acc_first"] == pytest.approx(statistics.mean(acc[:5]))
    assert e["gold_acc_last"] == pytest.approx(statistics.mean(acc[-5:]))
    assert e["reward_last"] == statistics.mean(reward[-5:])
    # brute force: the first window ending at t whose mean falls 2 standard errors below the first one's
    se = statistics.stdev(acc[:5]) / 5**0.5

    def falls(t: int) -> bool:
        w = acc[t - 4 : t + 1]
        return (
            statistics.mean(acc[:5]) - statistics.mean(w)
            > 2 * (se**2 + (statistics.stdev(w) / 5**0.5) ** 2) ** 0.5
        )

    assert e["since_step"] == min(t for t in range(9, steps) if all(falls(u) for u in range(t, steps)))
    # a dip that recovers by the end: not gamed
    dip = [(0.1 if 10 <= i < 15 else 0.5) + wobble[i % 5] for i in range(steps)]
    assert math.isnan(exploitation(_rows(reward, dip, [50.0] * steps))["since_step"])
    # accuracy holds but the length collapses to a third while the reward rises: gamed from step 13
    collapse = exploitation(_rows(reward, [0.5 + w for w in wobble] * 4, [60.0] * 10 + [20.0] * 10))
    assert collapse["since_step"] == 13.0  # the window 9..13 averages 28 tokens, under half of 60
    # accuracy falls but the reward falls too (nothing gamed): not flagged
    assert math.isnan(exploitation(_rows(reward[::-1], acc, [50.0] * steps))["since_step"])
    assert exploitation(_rows(reward[:9], acc[:9], [50.0] * 9)) == {}  # too short for two windows
