"""MATH500 (`HuggingFaceH4/MATH-500`): the paper's MATH evaluation set, 500 problems with answers."""

from __future__ import annotations

from pipeline.data.jsonl import require
from pipeline.data.prompts import chat_messages
from pipeline.data.sources import load_split
from pipeline.types import Prompt

HUB_ID = "HuggingFaceH4/MATH-500"


def load_math500(
    path: str | None, split: str, system_prompt: str | None, limit: int | None = None
) -> list[Prompt]:
    records, source = load_split("math500", path, split, HUB_ID)
    prompts = []
    for rec in records[:limit] if limit is not None else records:
        prompts.append(
            Prompt(
                id=str(require(rec, "unique_id", source)),
                messages=chat_messages(require(rec, "problem", source), system_prompt),
                gold=str(require(rec, "answer", source)),
                meta={k: rec[k] for k in ("subject", "level") if k in rec},
            )
        )
    return prompts
