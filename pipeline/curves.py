"""Training curves (results/train/<method>/steps.csv): loading, early-vs-late trends, and the check for
a reward that rises while what it stands for falls (the paper's offline self-certainty is hacked)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

# (csv column, header) of the training trends table: early vs late mean per method.
TRENDS = [
    ("reward_mean", "reward"),
    ("self_certainty_mean", "self-certainty"),
    ("completion_length_mean", "length"),
    ("gold_accuracy", "gold acc"),
    ("gold_answer_rate", "answer rate"),
    ("completion_clipped_ratio", "clipped"),
]
# The exploitation check: window of steps averaged, and the fall in gold accuracy or answer rate that
# counts (a window of 5 steps x 32 rollouts: a standard error of about 0.04 at accuracy 0.5).
WINDOW = 5
DROP = 0.05


def load_curves(root: Path) -> dict[str, list[dict[str, float]]]:
    """method -> rows of results/train/<method>/steps.csv (numbers; empty cells dropped)."""
    curves = {}
    for f in sorted(root.glob("*/steps.csv")):
        with open(f, encoding="utf-8") as fh:
            curves[f.parent.name] = [
                {k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)
            ]
    return curves


def _window_mean(rows: list[dict[str, float]], column: str) -> float:
    values = [r[column] for r in rows if column in r and math.isfinite(r[column])]
    return sum(values) / len(values) if values else math.nan


def trend_table(curves: dict[str, list[dict[str, float]]], methods: list[str]) -> str:
    """Markdown: per method, the mean of each curve over the first and the last quarter of training."""
    lines = [
        "| method | steps | " + " | ".join(f"{h} (first -> last quarter)" for _, h in TRENDS) + " |",
        "|---|---|" + "---|" * len(TRENDS),
    ]
    for m in methods:
        rows = curves.get(m, [])
        if not rows:
            continue
        q = max(1, len(rows) // 4)
        cells = [f"{_window_mean(rows[:q], c):.3f} -> {_window_mean(rows[-q:], c):.3f}" for c, _ in TRENDS]
        lines.append(f"| {m} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rolling(rows: list[dict[str, float]], column: str, window: int) -> list[float]:
    """Mean of `column` over the `window` steps ending at each step (fewer at the start)."""
    return [_window_mean(rows[max(0, i - window + 1) : i + 1], column) for i in range(len(rows))]


def exploitation(rows: list[dict[str, float]], window: int = WINDOW, drop: float = DROP) -> dict[str, float]:
    """From the step where windowed gold accuracy peaked to the last step: the changes of windowed
    reward, gold accuracy, answer rate and length, and whether they flag exploitation."""
    acc = _rolling(rows, "gold_accuracy", window)
    if not rows or all(math.isnan(a) for a in acc):
        return {}
    peak = max(range(len(acc)), key=lambda i: (acc[i] if math.isfinite(acc[i]) else -math.inf, -i))
    out: dict[str, float] = {"peak_step": rows[peak].get("step", float(peak))}
    for column, name in (
        ("reward_mean", "reward"),
        ("gold_accuracy", "gold_acc"),
        ("gold_answer_rate", "answer_rate"),
        ("completion_length_mean", "length"),
    ):
        curve = _rolling(rows, column, window)
        out[f"{name}_at_peak"], out[f"{name}_last"] = curve[peak], curve[-1]
    fell = any(
        out[f"{k}_last"] < out[f"{k}_at_peak"] - drop
        for k in ("gold_acc", "answer_rate")
        if math.isfinite(out[f"{k}_at_peak"])
    )
    ratio = out["length_last"] / out["length_at_peak"] if out["length_at_peak"] > 0 else math.nan
    degenerate = math.isfinite(ratio) and not 0.5 <= ratio <= 2.0
    out["exploited"] = float(out["reward_last"] > out["reward_at_peak"] and (fell or degenerate))
    return out


def exploitation_table(curves: dict[str, list[dict[str, float]]], methods: list[str]) -> str:
    """Markdown: the exploitation check per method."""
    lines = [
        "| method | gold acc peaked at step | reward (peak -> last) | gold acc | answer rate | length "
        "| reward up while the rest fell? |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        e = exploitation(curves.get(m, []))
        if not e:
            continue
        cells = [
            f"{e[f'{k}_at_peak']:.3f} -> {e[f'{k}_last']:.3f}" for k in ("reward", "gold_acc", "answer_rate")
        ]
        cells.append(f"{e['length_at_peak']:.1f} -> {e['length_last']:.1f}")
        flag = "**yes**" if e["exploited"] else "no"
        lines.append(f"| {m} | {int(e['peak_step'])} | " + " | ".join(cells) + f" | {flag} |")
    return "\n".join(lines)
