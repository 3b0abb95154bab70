"""Seeds: one experiment run under several trainer seeds, read together.

One training run of a small model is one draw: the same config under another seed (data order and
rollout sampling) can end far away. Each seed's run is its own DVC experiment with its own results/
folder; this module reads several such folders, shows every seed's numbers side by side, and pools
them. Pooling averages each held-out item's grade over the seeds, so the paired bootstrap (which
resamples items) gives an interval of the seed-averaged difference that keeps the items' correlation
across seeds, and McNemar's test becomes a sign test over the items whose seed average differs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline.curves import load_curves
from pipeline.eval.paired import auroc
from pipeline.eval.stats import headline_score
from pipeline.report import item_scores, load_eval_metrics, load_items, paired_table

# (steps.csv column, header): per seed, the last quarter of training
LAST_QUARTER = [
    ("reward_mean", "reward"),
    ("self_certainty_mean", "self-certainty"),
    ("completion_length_mean", "length"),
    ("gold_accuracy", "gold acc"),
]


def pool_items(
    per_seed: list[dict[tuple[str, str], list[dict[str, Any]]]],
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(model, benchmark) -> every seed's graded completions, only where every seed has that result
    (a model missing from one seed would otherwise be pooled over fewer seeds than the others)."""
    keys = set(per_seed[0]).intersection(*per_seed[1:]) if per_seed else set()
    return {k: [r for seed in per_seed for r in seed[k]] for k in sorted(keys)}


def score_table(
    per_seed: list[dict[tuple[str, str], dict[str, Any]]],
    labels: list[str],
    models: list[str],
    benchmarks: list[str],
) -> str:
    """Markdown: each model's headline score under each seed, their mean and range (max - min)."""
    lines = [
        "| benchmark | model | " + " | ".join(labels) + " | mean | range |",
        "|---|---|" + "---|" * (len(labels) + 2),
    ]
    for bench in benchmarks:
        for model in models:
            values = [
                None if (model, bench) not in m else headline_score(m[(model, bench)]) for m in per_seed
            ]
            if all(v is None for v in values):
                continue
            cells = ["-" if v is None else f"{v:.3f}" for v in values]
            known = [v for v in values if v is not None]
            spread = f"{max(known) - min(known):.3f}" if len(known) == len(values) else "-"
            mean = f"{sum(known) / len(known):.3f}" if len(known) == len(values) else "-"
            lines.append(f"| {bench} | {model} | " + " | ".join(cells) + f" | {mean} | {spread} |")
    return "\n".join(lines)


def certainty_table(
    per_seed: list[dict[tuple[str, str], list[dict[str, Any]]]],
    labels: list[str],
    models: list[str],
    benchmarks: list[str],
) -> str:
    """Markdown: per seed, the AUROC of answers' self-certainty for correctness and the correct count.
    Not pooled: each seed's model has its own certainty scale, and base would be counted once per seed."""
    lines = [
        "| benchmark | model | " + " | ".join(f"AUROC {x} (n correct)" for x in labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for bench in benchmarks:
        for model in models:
            cells = []
            for items in per_seed:
                rows = [
                    r
                    for r in items.get((model, bench), [])
                    if r.get("correct") is not None and r.get("self_certainty") is not None
                ]
                ok = [bool(r["correct"]) for r in rows]
                value = auroc([float(r["self_certainty"]) for r in rows], ok) if rows else math.nan
                cells.append(("-" if math.isnan(value) else f"{value:.3f}") + f" ({sum(ok)})")
            if any(c != "- (0)" for c in cells):
                lines.append(f"| {bench} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def training_table(
    per_seed: list[dict[str, list[dict[str, float]]]], labels: list[str], methods: list[str]
) -> str:
    """Markdown: per method and seed, the mean of each curve over the last quarter of training."""
    lines = [
        "| method | seed | steps | " + " | ".join(h for _, h in LAST_QUARTER) + " |",
        "|---|---|---|" + "---|" * len(LAST_QUARTER),
    ]
    for method in methods:
        for label, curves in zip(labels, per_seed, strict=True):
            rows = curves.get(method, [])
            if not rows:
                continue
            tail = rows[-max(1, len(rows) // 4) :]
            cells = []
            for column, _ in LAST_QUARTER:
                values = [r[column] for r in tail if column in r and math.isfinite(r[column])]
                cells.append(f"{sum(values) / len(values):.3f}" if values else "-")
            lines.append(f"| {method} | {label} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seeds_report(roots: list[Path], labels: list[str], methods: list[str], benchmarks: list[str]) -> str:
    """Markdown comparing the results/ folders of one experiment's seeds (results/eval, results/train)."""
    if len(roots) != len(labels):
        raise ValueError(f"{len(roots)} results folders but {len(labels)} labels")
    for root in roots:
        if not (root / "eval").is_dir():
            raise FileNotFoundError(f"{root / 'eval'} does not exist: pass the results/ folder of each seed")
    metrics = [load_eval_metrics(r / "eval") for r in roots]
    items = [load_items(r / "eval") for r in roots]
    curves = [load_curves(r / "train") for r in roots]
    pooled = pool_items(items)
    models = ["base", *methods]
    pooled_scores = {k: item_scores(v) for k, v in pooled.items()}
    means = [
        f"{b}/{m} {sum(s.values()) / len(s):.3f}" for (m, b), s in pooled_scores.items() if s and m in models
    ]
    return "\n".join(
        [
            f"# Seeds: {', '.join(labels)}",
            "",
            "## Held-out scores per seed",
            "",
            score_table(metrics, labels, models, benchmarks),
            "",
            "## Pooled over seeds, paired on the same items",
            "",
            "Each item's grade is averaged over the seeds; the bootstrap resamples items. Seed-averaged "
            "scores: " + ", ".join(means) + ".",
            "",
            paired_table(pooled, {}, models, benchmarks, overlap_column=False),
            "",
            "## Self-certainty of right and wrong answers, per seed",
            "",
            "AUROC of each answer's self-certainty for being correct (0.5: no separation).",
            "",
            certainty_table(items, labels, models, benchmarks),
            "",
            "## Training, last quarter, per seed",
            "",
            training_table(curves, labels, methods),
            "",
        ]
    )
