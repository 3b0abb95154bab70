"""The experiment report: a paper-style table (rows base/methods, columns benchmarks) and step curves."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_path, write_text_atomic

# (csv column, title, file name) of the curves drawn per method.
CURVES = [
    ("reward_mean", "Reward (method's own)", "reward.png"),
    ("self_certainty_mean", "Self-certainty", "self_certainty.png"),
    ("completion_length_mean", "Response length (tokens)", "response_length.png"),
    ("gold_accuracy", "Gold accuracy (training rollouts)", "gold_accuracy.png"),
]


def load_eval_metrics(root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(model, benchmark) -> metrics.json of results/eval/<model>/<benchmark>/."""
    out = {}
    for f in sorted(root.glob("*/*/metrics.json")):
        out[(f.parent.parent.name, f.parent.name)] = json.loads(f.read_text(encoding="utf-8"))
    return out


def load_curves(root: Path) -> dict[str, list[dict[str, float]]]:
    """method -> rows of results/train/<method>/steps.csv (numbers; empty cells dropped)."""
    curves = {}
    for f in sorted(root.glob("*/steps.csv")):
        with open(f, encoding="utf-8") as fh:
            curves[f.parent.name] = [
                {k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)
            ]
    return curves


def _cell(m: dict[str, Any] | None) -> str:
    """One table cell: the headline score with its 95% interval and n, or why there is none."""
    if m is None:
        return "-"
    value = m.get("score", m.get("accuracy"))
    if value is None:  # e.g. AlpacaEval without a judge: outputs saved, no number made up
        return f"{m.get('status', 'no score')} (n={m['n']})"
    if m.get("ci95_low") is None:
        return f"{value:.3f} (n={m['n']})"
    return f"{value:.3f} [{m['ci95_low']:.2f}, {m['ci95_high']:.2f}] (n={m['n']})"


def results_table(
    metrics: dict[tuple[str, str], dict[str, Any]], models: list[str], benchmarks: list[str]
) -> str:
    """Markdown table: headline metric with its 95% CI and n per cell; '-' where a result is missing."""
    names = {}
    for (_, bench), m in metrics.items():
        names.setdefault(bench, m.get("metric", "accuracy"))
    header = "| model | " + " | ".join(f"{b} ({names.get(b, 'accuracy')})" for b in benchmarks) + " |"
    lines = [header, "|---|" + "---|" * len(benchmarks)]
    for model in models:
        cells = [_cell(metrics.get((model, bench))) for bench in benchmarks]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[dict[str, float]]], out_dir: Path) -> list[Path]:
    """One PNG per curve, one line per method; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for column, title, name in CURVES:
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, rows in curves.items():
            pts = [(r["step"], r[column]) for r in rows if column in r and math.isfinite(r[column])]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
        ax.set_xlabel("training step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        fig.tight_layout()
        with atomic_path(out_dir / name) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        written.append(out_dir / name)
    return written


def write_report(
    eval_root: Path, train_root: Path, out: Path, experiment: str, methods: list[str], benchmarks: list[str]
) -> str:
    """results/report.md with the table, per-method training summary and the curves."""
    metrics = load_eval_metrics(eval_root)
    curves = load_curves(train_root)
    plots = plot_curves({m: curves[m] for m in methods if m in curves}, out.parent / "plots")
    parts = [
        f"# Report: {experiment}",
        "",
        "Headline metric per benchmark (greedy unless configured otherwise) with its 95% interval "
        "and item count.",
        "",
    ]
    parts.append(results_table(metrics, ["base", *methods], benchmarks))
    parts += [
        "",
        "## Training (last step)",
        "",
        "| method | steps | reward | self-certainty | length | gold acc |",
        "|---|---|---|---|---|---|",
    ]
    for m in methods:
        rows = curves.get(m, [])
        if rows:
            last = rows[-1]
            cells = [
                f"{last.get(k, math.nan):.3f}"
                for k in ("reward_mean", "self_certainty_mean", "completion_length_mean", "gold_accuracy")
            ]
            parts.append(f"| {m} | {len(rows)} | " + " | ".join(cells) + " |")
    parts += ["", "## Curves", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
    text = "\n".join(parts) + "\n"
    write_text_atomic(out, text)
    return text
