"""MMLU-Pro test: official 5-shot CoT prompt (no chat template), letter read as the official script reads it.

Extraction follows TIGER-AI-Lab/MMLU-Pro `extract_answer` -> `extract_again` -> `extract_final`, in order:

1. `answer is \\(?([A-J])\\)?` (case-sensitive, first match)            -> source "answer_is"
2. `.*[aA]nswer:\\s*([A-J])` (no DOTALL: the first line holding one;
   greedy, so the last "answer:" on that line)                          -> source "answer_colon"
3. `\\b[A-J]\\b(?!.*\\b[A-J]\\b)` with DOTALL (the last standalone
   capital A-J anywhere, even the pronoun "I")                          -> source "last_letter"

A prediction is correct when it equals the gold letter (the record's `answer` field, as the official
scorer compares). Deviation, on purpose: when nothing is extracted the official script scores a
`random.seed(12345)` guess among the options; we count the item wrong with source "none", so the accuracy
never rewards unanswered items. A letter past the item's option count (e.g. "J" on a 4-option question)
is wrong, flagged `out_of_range` in the verdict detail.

Configure `stop: ["Question:"]` for this benchmark, as the official generation does.
"""

from __future__ import annotations

import re

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.mmlu_pro import LETTERS, load_mmlu_pro
from pipeline.data.screen import RecordScreen
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.verdict import Verdict
from pipeline.types import Prompt

# The official extraction cascade, tried in this order (see the module docstring).
_PATTERNS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("answer_is", re.compile(r"answer is \(?([A-J])\)?"), 1),
    ("answer_colon", re.compile(r".*[aA]nswer:\s*([A-J])"), 1),
    ("last_letter", re.compile(r"\b[A-J]\b(?!.*\b[A-J]\b)", re.DOTALL), 0),
)
# Generation stop strings of the official local evaluation.
STOP = ("Question:",)


def extract_choice(completion: str) -> tuple[str | None, str]:
    """(letter, pattern name) of the first official pattern that matches, or (None, "none")."""
    for name, pattern, group in _PATTERNS:
        match = pattern.search(completion)
        if match:
            return match.group(group), name
    return None, "none"


def grade_choice(completion: str, gold: str, num_options: int) -> Verdict:
    """Verdict of one completion against the gold letter of a question with `num_options` options."""
    letter, source = extract_choice(completion)
    out_of_range = letter is not None and letter not in LETTERS[:num_options]
    correct = letter is not None and not out_of_range and letter == gold
    return Verdict(correct=correct, extracted=letter, source=source, detail={"out_of_range": out_of_range})


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    # The official format has no system prompt and no chat template: Prompt.text is used verbatim.
    del data, system_prompt, screen  # no math-verify gold to screen (load_benchmark counts items)
    return load_mmlu_pro(bench.path, bench.split)


def grade(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    del bench
    if len(prompts) != len(completions):
        raise ValueError(f"mmlu_pro: {len(prompts)} prompts but {len(completions)} completions")
    verdicts = []
    for p, c in zip(prompts, completions, strict=True):
        if p.gold is None:
            raise ValueError(f"{p.id}: MMLU-Pro prompt has no gold letter")
        verdicts.append(grade_choice(c, p.gold, int(p.meta["num_options"])))
    return verdicts


BENCHMARK = Benchmark(name="mmlu_pro", load=load, grade=grade, metric="accuracy", category_key="category")
