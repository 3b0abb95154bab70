"""Tasks: one module per dataset, holding its loading, prompt format and grading. A benchmark's module
exports `BENCHMARK` (loader + grader + metric); a training dataset's exports `training_prompts`
(pipeline/tasks/training.py). Both registries import a module by name on first use, so a benchmark's
heavy dependencies (a judge client, the alpaca_eval library) are never imported by the others.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.screen import RecordScreen, check_limit
from pipeline.eval.verdict import Verdict
from pipeline.registry import Registry
from pipeline.types import Prompt

# `benchmarks.<key>.name` -> the task module's BENCHMARK.
BENCHMARKS: Registry[Benchmark] = Registry(
    "benchmark",
    {
        name: f"pipeline.tasks.{name}:BENCHMARK"
        for name in (
            "arith",
            "gsm8k",
            "math500",
            "humaneval",
            "cruxeval",
            "livecodebench",
            "mmlu_pro",
            "alpaca_eval",
        )
    },
)


class Loader(Protocol):
    """(bench config, data config, system prompt, screen) -> every usable item of the split, dataset order.

    Benchmarks graded against a gold answer by math-verify pass each gold to `screen.gold` (a bad one
    raises or is skipped and counted, per `on_invalid`); the others ignore the screen.
    """

    def __call__(
        self,
        bench: BenchmarkConfig,
        data: DataConfig,
        system_prompt: str | None,
        screen: RecordScreen | None = None,
    ) -> list[Prompt]: ...


@dataclass(frozen=True)
class Benchmark:
    name: str
    # Every usable item of the configured split, in dataset order (see Loader).
    load: Loader
    # (prompts, completions, bench config) -> one Verdict per completion, same order.
    grade: Callable[[list[Prompt], list[str], BenchmarkConfig], list[Verdict]]
    # Name of the headline metric in metrics.json: accuracy | pass_at_1 | pass_at_1_public | lc_win_rate.
    metric: str = "accuracy"
    # Prompt.meta key whose value splits the headline metric per category (e.g. MMLU-Pro's subject).
    category_key: str | None = None
    # Optional benchmark-level scoring merged into metrics.json (AlpacaEval's judged win rate):
    # (prompts, completions, bench, model name, output dir or None) -> metrics.
    summarize: (
        Callable[[list[Prompt], list[str], BenchmarkConfig, str, Path | None], dict[str, Any]] | None
    ) = None


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"benchmarks.{name}: unknown benchmark; available: {list(BENCHMARKS)}")
    return BENCHMARKS[name]


def load_benchmark(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    """A benchmark's items; with `limit`, a seeded random subset (kept in dataset order).

    Invalid golds go to `screen` (default: one built from `on_invalid`); its `stats()` count the items
    kept and skipped before the subset is drawn.
    """
    screen = screen or RecordScreen(bench.on_invalid, f"benchmarks.{bench.name}")
    check_limit(bench.limit, f"{screen.name}.limit")
    prompts = get_benchmark(bench.name).load(bench, data, system_prompt, screen=screen)
    # Again for loaders that do not screen: counts their items, and an empty dataset is a DataError.
    prompts = screen.finish(bench.path or f"benchmarks.{bench.name}", prompts)
    if bench.limit is not None and bench.limit < len(prompts):
        keep = sorted(random.Random(bench.seed).sample(range(len(prompts)), bench.limit))
        prompts = [prompts[i] for i in keep]
    return prompts
