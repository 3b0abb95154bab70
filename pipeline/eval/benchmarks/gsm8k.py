"""GSM8K test (`openai/gsm8k`, main): last boxed answer, else the last number (recorded as the fallback)."""

from __future__ import annotations

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.gsm8k import load_gsm8k
from pipeline.data.screen import RecordScreen
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.math_benchmark import grade_math
from pipeline.types import Prompt


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data
    return load_gsm8k(bench.path, bench.split, system_prompt, screen=screen)


BENCHMARK = Benchmark(name="gsm8k", load=load, grade=grade_math, metric="accuracy")
