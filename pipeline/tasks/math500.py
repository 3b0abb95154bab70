"""MATH500 (`HuggingFaceH4/MATH-500`): math-verify on the last boxed answer, no fallback.

Data: MATH500 (`HuggingFaceH4/MATH-500`): the paper's MATH evaluation set, 500 problems with answers.
"""

from __future__ import annotations

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.jsonl import require, where
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.eval.math_grader import grade_math
from pipeline.tasks import Benchmark
from pipeline.types import Prompt

HUB_ID = "HuggingFaceH4/MATH-500"


def load_math500(
    path: str | None,
    split: str,
    system_prompt: str | None,
    limit: int | None = None,
    screen: RecordScreen | None = None,
) -> list[Prompt]:
    """MATH500 problems; an `answer` math-verify cannot parse goes to `screen` (default: raise)."""
    screen = screen or RecordScreen()
    records, source = load_split("math500", path, split, HUB_ID)
    prompts = []
    for rec in records[:limit] if limit is not None else records:
        pid = str(require(rec, "unique_id", source))
        problem = require(rec, "problem", source, str)
        gold = require(rec, "answer", source, str)
        if not screen.gold(where(rec, source), pid, gold):
            continue
        prompts.append(
            Prompt(
                id=pid,
                messages=chat_messages(problem, system_prompt),
                gold=gold,
                meta={k: rec[k] for k in ("subject", "level") if k in rec},
            )
        )
    return screen.finish(source, prompts)


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data
    return load_math500(bench.path, bench.split, system_prompt, screen=screen)


BENCHMARK = Benchmark(name="math500", load=load, grade=grade_math, metric="accuracy", category_key="subject")
