"""GSM8K grade-school word problems (`openai/gsm8k`, config main)."""

from __future__ import annotations

from pipeline.data.jsonl import DataError, require
from pipeline.data.prompts import chat_messages
from pipeline.data.sources import load_split
from pipeline.types import Prompt

HUB_ID = "openai/gsm8k"


def gsm8k_gold(answer: str) -> str | None:
    """The final number after '####' in a GSM8K worked answer, commas removed."""
    if "####" not in answer:
        return None
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def load_gsm8k(
    path: str | None, split: str, system_prompt: str | None, limit: int | None = None
) -> list[Prompt]:
    records, source = load_split("gsm8k", path, split, HUB_ID, hub_config="main")
    prompts = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        gold = gsm8k_gold(require(rec, "answer", source))
        if gold is None:
            raise DataError(f"{source}:{rec.get('_line', i + 1)}: answer has no '#### <number>' line")
        prompts.append(
            Prompt(
                id=f"gsm8k/{split}/{i}",
                messages=chat_messages(require(rec, "question", source), system_prompt),
                gold=gold,
                # GSM8K answers are plain numbers: the last number is the recorded fallback
                answer_fallback="last_number",
            )
        )
    return prompts
