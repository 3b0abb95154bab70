"""MATH500 (`HuggingFaceH4/MATH-500`): math-verify on the last boxed answer, no fallback."""

from __future__ import annotations

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.math500 import load_math500
from pipeline.data.screen import RecordScreen
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.math_benchmark import grade_math
from pipeline.types import Prompt


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data
    return load_math500(bench.path, bench.split, system_prompt, screen=screen)


BENCHMARK = Benchmark(name="math500", load=load, grade=grade_math, metric="accuracy", category_key="subject")
