"""Seeds read together: per-seed scores, pooled paired comparisons, last-quarter training, the CLI."""

from __future__ import annotations

import csv
import json
import random
import re

import pytest

from cli.seeds import main as seeds_main
from pipeline.seeds import pool_items, seeds_report

N = 40


def _sc(i: int, c: int) -> float:
    """An answer's self-certainty: a little higher when correct, mixed with an item-dependent jitter
    (so AUROC is neither 0.5 nor 1 and differs between seeds)."""
    return 10.0 + 0.3 * c + ((i * 7919) % N) / N


def _results(root, grades: dict[str, list[int]], curves: dict[str, list[float]]) -> None:
    """A results/ folder: eval/<model>/arith/{samples.jsonl,metrics.json} from 0/1 grades per item, and
    train/<method>/steps.csv whose self-certainty column is the given curve."""
    for model, g in grades.items():
        d = root / "eval" / model / "arith"
        d.mkdir(parents=True)
        rows = [{"id": f"q{i}", "correct": bool(c), "self_certainty": _sc(i, c)} for i, c in enumerate(g)]
        (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        acc = sum(g) / len(g)
        (d / "metrics.json").write_text(
            json.dumps({"score": acc, "ci95_low": 0.0, "ci95_high": 1.0, "n": len(g)})
        )
    for method, sc in curves.items():
        d = root / "train" / method
        d.mkdir(parents=True)
        with open(d / "steps.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "reward_mean", "self_certainty_mean", "completion_length_mean"])
            for step, v in enumerate(sc):
                w.writerow([step, v, v, 50 + step])


@pytest.fixture
def two_seeds(tmp_path):
    rng = random.Random(3)
    base = [int(rng.random() < 0.3) for _ in range(N)]
    seeds = []
    for s in range(2):
        grpo = [int(rng.random() < 0.5) for _ in range(N)]
        root = tmp_path / f"seed{s}"
        _results(root, {"base": base, "grpo": grpo}, {"grpo": [float(s + k) for k in range(8)]})
        seeds.append((root, grpo))
    return base, seeds


def _row(text: str, prefix: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(prefix))
    return [c.strip() for c in line.strip("|").split("|")]


def test_scores_per_seed_and_pooled_difference_match_brute_force(two_seeds) -> None:
    base, seeds = two_seeds
    roots = [r for r, _ in seeds]
    text = seeds_report(roots, ["s0", "s1"], ["grpo"], ["arith"])
    accs = [sum(g) / N for _, g in seeds]
    row = _row(text, "| arith | grpo | ")
    assert row[2:] == [
        f"{accs[0]:.3f}",
        f"{accs[1]:.3f}",
        f"{sum(accs) / 2:.3f}",
        f"{abs(accs[0] - accs[1]):.3f}",
    ]
    # pooled: the mean over items of (seed-averaged grade - base grade), computed here directly
    diff = sum((seeds[0][1][i] + seeds[1][1][i]) / 2 - base[i] for i in range(N)) / N
    paired = _row(text, "| arith | grpo | base |")
    assert paired[3].startswith(f"{diff:+.3f} [")
    low, high = (float(x) for x in re.findall(r"[+-]\d\.\d{3}", paired[3])[1:3])
    assert low <= diff <= high
    # items where the seed average beats base / loses to it
    wins = sum((seeds[0][1][i] + seeds[1][1][i]) / 2 > base[i] for i in range(N))
    losses = sum((seeds[0][1][i] + seeds[1][1][i]) / 2 < base[i] for i in range(N))
    assert paired[4] == f"{wins} / {losses}"


def test_training_table_is_each_seeds_last_quarter(two_seeds) -> None:
    _, seeds = two_seeds
    text = seeds_report([r for r, _ in seeds], ["s0", "s1"], ["grpo"], ["arith"])
    for s in range(2):
        last = [float(s + k) for k in range(8)][-2:]  # 8 steps: the last quarter is 2 steps
        row = _row(text, f"| grpo | s{s} |")
        assert row[2] == "8" and float(row[4]) == pytest.approx(sum(last) / 2, abs=5e-4)
        assert float(row[5]) == pytest.approx(50 + 6.5, abs=5e-4)


def test_a_result_missing_from_one_seed_is_not_pooled(tmp_path) -> None:
    a = {
        ("base", "arith"): [{"id": "q0", "correct": True}],
        ("grpo", "arith"): [{"id": "q0", "correct": False}],
    }
    b = {("base", "arith"): [{"id": "q0", "correct": True}]}
    assert set(pool_items([a, b])) == {("base", "arith")}
    assert len(pool_items([a, b])[("base", "arith")]) == 2


def test_cli_writes_the_report_and_names_a_bad_folder(two_seeds, tmp_path, capsys) -> None:
    _, seeds = two_seeds
    out = tmp_path / "seeds.md"
    assert seeds_main([str(r) for r, _ in seeds] + ["--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Seeds: seed0, seed1") and "| arith | grpo | base |" in text
    with pytest.raises(SystemExit):
        seeds_main([str(seeds[0][0]), str(tmp_path / "nowhere")])
    assert "nowhere/eval" in capsys.readouterr().err


def test_certainty_auroc_is_per_seed_against_pairwise_counts(two_seeds) -> None:
    _, seeds = two_seeds
    text = seeds_report([r for r, _ in seeds], ["s0", "s1"], ["grpo"], ["arith"])
    row = _row(text.split("## Self-certainty")[1], "| arith | grpo |")
    for cell, (_, grades) in zip(row[2:], seeds, strict=True):
        sc = [_sc(i, c) for i, c in enumerate(grades)]
        pos = [x for x, c in zip(sc, grades, strict=True) if c]
        neg = [x for x, c in zip(sc, grades, strict=True) if not c]
        wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
        assert cell == f"{wins / (len(pos) * len(neg)):.3f} ({len(pos)})"
    assert "| - |" not in text.split("## Pooled")[1].split("## Self")[0]  # no overlap column pooled
