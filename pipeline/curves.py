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
# The exploitation check: window of steps averaged, and how many standard errors a fall must exceed.
WINDOW = 5
Z = 2.0
# (csv column, short name) of the curves the exploitation check compares.
CHECKED = [
    ("reward_mean", "reward"),
    ("gold_accuracy", "gold_acc"),
    ("gold_answer_rate", "answer_rate"),
    ("completion_length_mean", "length"),
]


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


def _mean_se(rows: list[dict[str, float]], column: str) -> tuple[float, float]:
    """Mean of `column` over `rows` and its standard error (from the steps' spread)."""
    values = [r[column] for r in rows if column in r and math.isfinite(r[column])]
    if not values:
        return (math.nan, math.nan)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return (mean, math.nan)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return (mean, math.sqrt(var / len(values)))


def exploitation(rows: list[dict[str, float]], window: int = WINDOW, z: float = Z) -> dict[str, float]:
    """Is the method's reward gamed? Each `window`-step window from the second on is compared with the
    first: flagged when the reward is higher while gold accuracy or the answer rate is lower by more than
    `z` standard errors of the difference, or the length halved or doubled. `since_step`: the first
    step from which every window to the end is flagged (nan: none, or the last window is not)."""
    if len(rows) < 2 * window:
        return {}
    first = {name: _mean_se(rows[:window], column) for column, name in CHECKED}
    since = math.nan
    for t in range(2 * window - 1, len(rows)):
        now = {name: _mean_se(rows[t - window + 1 : t + 1], column) for column, name in CHECKED}
        fell = any(
            first[k][0] - now[k][0] > z * math.hypot(first[k][1], now[k][1])
            for k in ("gold_acc", "answer_rate")
            if math.isfinite(first[k][0]) and math.isfinite(now[k][0])
        )
        ratio = now["length"][0] / first["length"][0] if first["length"][0] > 0 else math.nan
        degenerate = math.isfinite(ratio) and not 0.5 <= ratio <= 2.0
        if now["reward"][0] > first["reward"][0] and (fell or degenerate):
            if math.isnan(since):
                since = rows[t].get("step", float(t))
        else:
            since = math.nan
    out = {f"{name}_first": first[name][0] for name in first}
    out.update({f"{name}_last": now[name][0] for name in now})
    out["since_step"] = since
    return out


def exploitation_table(curves: dict[str, list[dict[str, float]]], methods: list[str]) -> str:
    """Markdown: the exploitation check per method."""
    lines = [
        "| method | reward (first -> last window) | gold acc | answer rate | length | gamed? |",
        "|---|---|---|---|---|---|",
    ]
    for m in methods:
        e = exploitation(curves.get(m, []))
        if not e:
            continue
        keys = ("reward", "gold_acc", "answer_rate")
        cells = [f"{e[f'{k}_first']:.3f} -> {e[f'{k}_last']:.3f}" for k in keys]
        cells.append(f"{e['length_first']:.1f} -> {e['length_last']:.1f}")
        flag = "no" if math.isnan(e["since_step"]) else f"**yes, from step {int(e['since_step'])}**"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {flag} |")
    return "\n".join(lines)
