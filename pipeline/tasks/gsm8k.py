"""GSM8K test (`openai/gsm8k`, main): last boxed answer, else the last number (recorded as the fallback).

Data: GSM8K grade-school word problems (`openai/gsm8k`, config main).
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

HUB_ID = "openai/gsm8k"


def gsm8k_gold(answer: str) -> str | None:
    """The final number after '####' in a GSM8K worked answer, commas removed."""
    if "####" not in answer:
        return None
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def load_gsm8k(
    path: str | None,
    split: str,
    system_prompt: str | None,
    limit: int | None = None,
    screen: RecordScreen | None = None,
) -> list[Prompt]:
    """GSM8K problems; an answer without a gradable '#### <number>' goes to `screen` (default: raise)."""
    screen = screen or RecordScreen()
    records, source = load_split("gsm8k", path, split, HUB_ID, hub_config="main")
    prompts = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        question = require(rec, "question", source, str)
        answer = require(rec, "answer", source, str)
        pid = f"gsm8k/{split}/{i}"
        tail = answer[-60:].replace("\n", " ")
        absent = f"answer has no '#### <number>' line (it ends {tail!r})"
        gold = gsm8k_gold(answer)
        if not screen.gold(where(rec, source), pid, gold, absent):
            continue
        prompts.append(
            Prompt(
                id=pid,
                messages=chat_messages(question, system_prompt),
                gold=gold,
                # GSM8K answers are plain numbers: the last number is the recorded fallback
                answer_fallback="last_number",
            )
        )
    return screen.finish(source, prompts)


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data
    return load_gsm8k(bench.path, bench.split, system_prompt, screen=screen)


BENCHMARK = Benchmark(name="gsm8k", load=load, grade=grade_math, metric="accuracy")


def training_prompts(cfg: DataConfig, system_prompt: str | None, screen: RecordScreen) -> list[Prompt]:
    """The `data` section's GSM8K split as training prompts."""
    return load_gsm8k(cfg.path, cfg.split, system_prompt, cfg.limit, screen=screen)
