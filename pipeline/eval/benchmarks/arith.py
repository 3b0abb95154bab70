"""The embedded arithmetic word problems' held-out split (generated from the `data` section)."""

from __future__ import annotations

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.arith import arith_prompts
from pipeline.data.screen import RecordScreen, screen_generated
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.math_benchmark import grade_math
from pipeline.types import Prompt


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    # Same generator settings as training (seed, sizes, levels), so the split is truly held out.
    d = data
    prompts = arith_prompts(bench.split, d.train_size, d.test_size, d.levels, d.seed, system_prompt)
    screen = screen or RecordScreen(bench.on_invalid, "benchmarks.arith")
    return screen_generated(prompts, screen, f"arith:{bench.split}")


BENCHMARK = Benchmark(name="arith", load=load, grade=grade_math, metric="accuracy")
