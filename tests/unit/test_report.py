"""The report: paper-style table from metrics files, and one PNG per curve with a line per method."""

from __future__ import annotations

import json

from pipeline.report import CURVES, results_table, write_report


def _metrics(root, model: str, bench: str, acc: float, n: int) -> None:
    d = root / model / bench
    d.mkdir(parents=True)
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
