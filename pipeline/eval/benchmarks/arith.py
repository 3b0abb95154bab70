"""The embedded arithmetic word problems' held-out split (generated from the `data` section)."""

from __future__ import annotations

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.arith import arith_prompts
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.math_benchmark import grade_math
from pipeline.types import Prompt


def load(bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None) -> list[Prompt]:
    # Same generator settings as training (seed, sizes, levels), so the split is truly held out.
    return arith_prompts(bench.split, data.train_size, data.test_size, data.levels, data.seed, system_prompt)


BENCHMARK = Benchmark(name="arith", load=load, grade=grade_math, metric="accuracy")
