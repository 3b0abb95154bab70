"""The experiment report: a paper-style table (rows base/methods, columns benchmarks) and step curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_path, write_json_atomic, write_text_atomic
from pipeline.curves import WINDOW, Z, exploitation_table, load_curves, trend_table
from pipeline.eval.paired import auroc, compare
from pipeline.eval.stats import headline_score

# (csv column, title, file name) of the curves drawn per method.
CURVES = [
    ("reward_mean", "Reward (method's own)", "reward.png"),
    ("self_certainty_mean", "Self-certainty", "self_certainty.png"),
    ("completion_length_mean", "Response length (tokens)", "response_length.png"),
    ("gold_accuracy", "Gold accuracy (training rollouts)", "gold_accuracy.png"),
    ("gold_answer_rate", "Answer rate (training rollouts)", "answer_rate.png"),
]
# Models every other model is compared with, item by item, when they are in the experiment.
REFERENCES = ("base", "grpo")


def load_eval_metrics(root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(model, benchmark) -> metrics.json of results/eval/<model>/<benchmark>/."""
    out = {}
    for f in sorted(root.glob("*/*/metrics.json")):
        out[(f.parent.parent.name, f.parent.name)] = json.loads(f.read_text(encoding="utf-8"))
    return out


def load_items(root: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(model, benchmark) -> the graded completions of results/eval/<model>/<benchmark>/samples.jsonl."""
    out = {}
    for f in sorted(root.glob("*/*/samples.jsonl")):
        with open(f, encoding="utf-8") as fh:
            out[(f.parent.parent.name, f.parent.name)] = [json.loads(line) for line in fh if line.strip()]
    return out


def item_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """item id -> fraction of its graded completions that are correct (ungraded ones are left out)."""
    hits: dict[str, list[float]] = {}
    for r in records:
        if r.get("correct") is not None:
            hits.setdefault(r["id"], []).append(float(r["correct"]))
    return {i: sum(v) / len(v) for i, v in hits.items()}


def _cell(m: dict[str, Any] | None) -> str:
    """One table cell: the headline score with its 95% interval and n, or why there is none."""
    if m is None:
        return "-"
    value = headline_score(m)
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


def _overlaps(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool | None:
    """Whether the two results' 95% intervals overlap (None when either has no interval)."""
    if not a or not b or a.get("ci95_low") is None or b.get("ci95_low") is None:
        return None
    return a["ci95_low"] <= b["ci95_high"] and b["ci95_low"] <= a["ci95_high"]


def paired_table(
    items: dict[tuple[str, str], list[dict[str, Any]]],
    metrics: dict[tuple[str, str], dict[str, Any]],
    models: list[str],
    benchmarks: list[str],
    overlap_column: bool = True,
) -> str:
    """Markdown: every model against base and GRPO on the same items (difference with its paired
    bootstrap 95% interval, discordant items, exact McNemar p) and, with `overlap_column`, whether the
    plain intervals of `metrics` overlap."""
    head = (
        "| benchmark | model | vs | difference [95% CI] | items only it / only the other gets right "
        "| McNemar p |"
    )
    if overlap_column:
        head += " 95% intervals overlap |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for bench in benchmarks:
        for ref in REFERENCES:
            if (ref, bench) not in items:
                continue
            ref_scores = item_scores(items[(ref, bench)])
            for model in models:
                if model == ref or (model, bench) not in items or (ref == "grpo" and model == "base"):
                    continue
                scores = item_scores(items[(model, bench)])
                if not set(scores) & set(ref_scores):
                    continue
                c = compare(scores, ref_scores)
                row = (
                    f"| {bench} | {model} | {ref} | {c.diff:+.3f} [{c.diff_low:+.3f}, {c.diff_high:+.3f}] "
                    f"(n={c.n}) | {c.a_only} / {c.b_only} | {c.p_value:.3g} |"
                )
                if overlap_column:
                    overlap = _overlaps(metrics.get((model, bench)), metrics.get((ref, bench)))
                    row += " - |" if overlap is None else " yes |" if overlap else " **no** |"
                lines.append(row)
    return "\n".join(lines)


def certainty_table(
    items: dict[tuple[str, str], list[dict[str, Any]]], models: list[str], benchmarks: list[str]
) -> str:
    """Markdown: does an answer's self-certainty separate correct from wrong (AUROC; 0.5 = chance)?"""
    lines = [
        "| benchmark | model | AUROC | self-certainty correct / wrong (mean) | n correct / wrong |",
        "|---|---|---|---|---|",
    ]
    for bench in benchmarks:
        for model in models:
            rows = [
                r
                for r in items.get((model, bench), [])
                if r.get("correct") is not None and r.get("self_certainty") is not None
            ]
            if not rows:
                continue
            sc = [float(r["self_certainty"]) for r in rows]
            ok = [bool(r["correct"]) for r in rows]
            right = [x for x, y in zip(sc, ok, strict=True) if y]
            wrong = [x for x, y in zip(sc, ok, strict=True) if not y]
            means = " / ".join(f"{sum(v) / len(v):.2f}" if v else "-" for v in (right, wrong))
            value = auroc(sc, ok)
            cell = "-" if math.isnan(value) else f"{value:.3f}"
            lines.append(f"| {bench} | {model} | {cell} | {means} | {len(right)} / {len(wrong)} |")
    return "\n".join(lines)


def summary(
    metrics: dict[tuple[str, str], dict[str, Any]],
    curves: dict[str, list[dict[str, float]]],
    models: list[str],
    benchmarks: list[str],
) -> dict[str, Any]:
    """The few numbers worth a column in `dvc exp show`: the headline score per benchmark and model,
    and the last step's reward, self-certainty and length per trained method."""
    out: dict[str, Any] = {}
    for bench in benchmarks:
        scores = {}
        for model in models:
            m = metrics.get((model, bench))
            value = None if m is None else headline_score(m)
            if value is not None:
                scores[model] = round(value, 4)
        if scores:
            out[bench] = scores
    for method, rows in curves.items():
        if method in models and rows:
            last = rows[-1]
            out.setdefault("train", {})[method] = {
                short: round(last[column], 4)
                for column, short in (
                    ("reward_mean", "reward"),
                    ("self_certainty_mean", "sc"),
                    ("completion_length_mean", "len"),
                )
                if column in last and math.isfinite(last[column])
            }
    return out


def write_report(
    eval_root: Path, train_root: Path, out: Path, experiment: str, methods: list[str], benchmarks: list[str]
) -> str:
    """results/report.md with the table, per-method training summary and the curves."""
    metrics = load_eval_metrics(eval_root)
    items = load_items(eval_root)
    curves = load_curves(train_root)
    models = ["base", *methods]
    plots = plot_curves({m: curves[m] for m in methods if m in curves}, out.parent / "plots")
    parts = [
        f"# Report: {experiment}",
        "",
        "Headline metric per benchmark (greedy unless configured otherwise) with its 95% interval "
        "and item count.",
        "",
    ]
    parts.append(results_table(metrics, models, benchmarks))
    parts += [
        "",
        "## Paired comparisons",
        "",
        "Each model against base and GRPO on the same items: the accuracy difference with its paired "
        "bootstrap 95% interval, the discordant items, and McNemar's exact test. Overlapping 95% "
        "intervals in the table above do not mean no difference, nor do separate ones prove it: read "
        "the paired p-value.",
        "",
        paired_table(items, metrics, models, benchmarks),
        "",
        "## Self-certainty of right and wrong answers",
        "",
        "AUROC of each answer's self-certainty for being correct (0.5: no separation).",
        "",
        certainty_table(items, models, benchmarks),
    ]
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
    parts += ["", "## Training trends", "", trend_table(curves, methods)]
    parts += [
        "",
        "## Reward exploitation check",
        "",
        f"Each {WINDOW}-step window of training against the first: is the method's own reward higher "
        f"while gold accuracy or the answer rate (on the training rollouts) is lower by more than {Z:g} "
        "standard errors, or has the length halved or doubled? *Gamed from step t*: every window from t "
        "to the end is.",
        "",
        exploitation_table(curves, methods),
    ]
    parts += ["", "## Curves", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
    text = "\n".join(parts) + "\n"
    # under one key of its own, so `dvc exp show --keep '^headline'` selects exactly these columns
    write_json_atomic(out.parent / "summary.json", {"headline": summary(metrics, curves, models, benchmarks)})
    write_text_atomic(out, text)
    return text
