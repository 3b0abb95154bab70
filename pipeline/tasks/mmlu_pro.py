"""MMLU-Pro test: official 5-shot CoT prompt (no chat template), letter read as the official script reads it.

Extraction follows TIGER-AI-Lab/MMLU-Pro `extract_answer` -> `extract_again` -> `extract_final`, in order:

1. `answer is \\(?([A-J])\\)?` (case-sensitive, first match)            -> source "answer_is"
2. `.*[aA]nswer:\\s*([A-J])` (no DOTALL: the first line holding one;
   greedy, so the last "answer:" on that line)                          -> source "answer_colon"
3. `\b[A-J]\b(?!.*\b[A-J]\b)` with DOTALL (the last standalone
   capital A-J anywhere, even the pronoun "I")                          -> source "last_letter"

A prediction is correct when it equals the gold letter (the record's `answer` field, as the official
scorer compares). Deviation, on purpose: when nothing is extracted the official script scores a
`random.seed(12345)` guess among the options; we count the item wrong with source "none", so the accuracy
never rewards unanswered items. A letter past the item's option count (e.g. "J" on a 4-option question)
is wrong, flagged `out_of_range` in the verdict detail.

Configure `stop: ["Question:"]` for this benchmark, as the official generation does.

Data: MMLU-Pro (`TIGER-Lab/MMLU-Pro`): up-to-ten-option questions in the official 5-shot chain-of-thought
format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.jsonl import DataError, require, where
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.eval.verdict import Verdict
from pipeline.tasks import Benchmark
from pipeline.types import Prompt

HUB_ID = "TIGER-Lab/MMLU-Pro"
# Option letters; the official regexes only ever read A-J (ten options at most).
LETTERS = "ABCDEFGHIJ"
# Exemplars per prompt (the official `--ntrain` default).
NUM_SHOTS = 5
# The official script keeps a prompt only under max_model_length - max_new_tokens = 4096 - 2048 tokens.
MAX_PROMPT_TOKENS = 2048
# cot_prompt_lib/initial_prompt.txt of the official repo, {$} -> category. The current file (the first
# version read "You are an expert in {$}...") ends in three newlines; generate_cot_prompt appends a fourth.
INITIAL_PROMPT = (
    "The following are multiple choice questions (with answers) about {$}. Think step by step and then "
    'finish your answer with "the answer is (X)" where X is the correct letter choice.\n\n\n'
)
# Ends every prompt; the exemplars' cot_content starts with "A: Let's think step by step." instead.
COT_TRIGGER = "Answer: Let's think step by step."
_EXEMPLAR_TRIGGER = "A: Let's think step by step."


@dataclass(frozen=True)
class MMLUProItem:
    """One MMLU-Pro record, "N/A" options dropped."""

    question_id: int
    question: str
    options: tuple[str, ...]
    # Gold letter; the official scorer compares predictions with this field (not with answer_index).
    answer: str
    answer_index: int
    category: str
    # Worked answer ("A: Let's think step by step. ... The answer is (X).") in validation; empty in test.
    cot_content: str
    src: str


def parse_item(rec: dict[str, Any], source: str) -> MMLUProItem:
    """A validated MMLUProItem, or a DataError naming file:line."""
    at = where(rec, source)
    options = require(rec, "options", source)
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise DataError(f"{at}: field 'options' must be a list of strings, got {options!r}")
    # The official preprocess removes every "N/A" (HF rows pad to ten options with it).
    kept = tuple(o for o in options if o != "N/A")
    if not 2 <= len(kept) <= len(LETTERS):
        raise DataError(f"{at}: expected 2..{len(LETTERS)} options after dropping 'N/A', got {len(kept)}")
    answer = require(rec, "answer", source)
    if not isinstance(answer, str) or answer not in LETTERS[: len(kept)]:
        raise DataError(f"{at}: answer {answer!r} is not one of the {len(kept)} option letters")
    question_id = require(rec, "question_id", source)
    answer_index = require(rec, "answer_index", source)
    for name, value in (("question_id", question_id), ("answer_index", answer_index)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{at}: field {name!r} must be an integer, got {value!r}")
    return MMLUProItem(
        question_id=question_id,
        question=str(require(rec, "question", source)),
        options=kept,
        answer=answer,
        answer_index=answer_index,
        category=str(require(rec, "category", source)),
        cot_content=str(rec.get("cot_content") or ""),
        src=str(rec.get("src") or ""),
    )


def format_question(item: MMLUProItem, with_answer: bool) -> str:
    """One question block: an exemplar (with its worked answer) or the open question (ends in the trigger)."""
    text = "Question:\n" + item.question + "\nOptions:\n"
    text += "".join(f"{LETTERS[i]}. {opt}\n" for i, opt in enumerate(item.options))
    if with_answer:
        return text + item.cot_content.replace(_EXEMPLAR_TRIGGER, COT_TRIGGER) + "\n\n"
    return text + COT_TRIGGER


def build_prompt(item: MMLUProItem, exemplars: list[MMLUProItem]) -> str:
    """The verbatim official prompt: instruction for the category, the exemplars, then the open question."""
    header = INITIAL_PROMPT.replace("{$}", item.category) + "\n"
    return header + "".join(format_question(e, True) for e in exemplars) + format_question(item, False)


def load_exemplars(path: str | None) -> dict[str, list[MMLUProItem]]:
    """The first NUM_SHOTS validation items of each category, in file order (the official selection)."""
    # A test *file* has its validation file beside it; a folder, hub id or None resolve inside load_split.
    if path is not None and Path(path).is_file():
        path = str(Path(path).parent)
    records, source = load_split("mmlu_pro", path, "validation", HUB_ID)
    by_category: dict[str, list[MMLUProItem]] = {}
    for rec in records:
        item = parse_item(rec, source)
        if not item.cot_content.strip():
            raise DataError(f"{where(rec, source)}: validation exemplar has no cot_content")
        by_category.setdefault(item.category, []).append(item)
    return by_category


def fit_prompt(
    item: MMLUProItem,
    shots: list[MMLUProItem],
    count_tokens: Callable[[str], int] | None,
    max_prompt_tokens: int = MAX_PROMPT_TOKENS,
) -> tuple[str, int]:
    """(prompt, shots kept): like the official loop, drops the last exemplar while the prompt is too long."""
    k = len(shots)
    text = build_prompt(item, shots)
    while count_tokens is not None and k > 0 and count_tokens(text) >= max_prompt_tokens:
        k -= 1
        text = build_prompt(item, shots[:k])
    return text, k


def load_mmlu_pro(
    path: str | None,
    split: str = "test",
    limit: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> list[Prompt]:
    """Every item of `split` (dataset order) as a verbatim-text Prompt; gold is the answer letter.

    `path`: null ($INTUITOR_DATA_DIR/mmlu_pro/ or the hub), a folder with <split>.jsonl and validation.jsonl,
    a <split>.jsonl file (validation.jsonl is read beside it), or a hub id. `count_tokens`: the evaluated
    model's prompt length in tokens, special tokens included (`len(tokenizer(text).input_ids)`, as the
    official script counts); given, exemplars are dropped as the official script does (see the docstring).
    """
    records, source = load_split("mmlu_pro", path, split, HUB_ID)
    exemplars = load_exemplars(path)
    prompts = []
    for rec in records[:limit] if limit is not None else records:
        item = parse_item(rec, source)
        shots = exemplars.get(item.category)
        if not shots:
            raise DataError(f"{where(rec, source)}: no validation exemplars for category {item.category!r}")
        # Evaluating the validation split itself must not show an item its own worked answer.
        shots = [e for e in shots if split != "validation" or e.question_id != item.question_id][:NUM_SHOTS]
        text, num_shots = fit_prompt(item, shots, count_tokens)
        prompts.append(
            Prompt(
                id=f"mmlu_pro/{split}/{item.question_id}",
                messages=[{"role": "user", "content": text}],
                gold=item.answer,
                meta={
                    "category": item.category,
                    "question_id": item.question_id,
                    "answer_index": item.answer_index,
                    "num_options": len(item.options),
                    "num_shots": num_shots,
                    "src": item.src,
                },
                text=text,
            )
        )
    return prompts


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
