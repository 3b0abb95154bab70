"""Prompts <-> jsonl records: what prepare_data writes and train/evaluate read."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.atomic import write_text_atomic
from pipeline.data.jsonl import read_records, require
from pipeline.types import Prompt


def write_prompts(prompts: list[Prompt], path: Path) -> None:
    """One record per prompt, written atomically (temporary name, then rename)."""
    lines = [
        json.dumps(
            {
                "id": p.id,
                "messages": p.messages,
                "gold": p.gold,
                "answer_fallback": p.answer_fallback,
                "meta": p.meta,
                "text": p.text,
            }
        )
        + "\n"
        for p in prompts
    ]
    write_text_atomic(path, "".join(lines))


def read_prompts(path: Path) -> list[Prompt]:
    src = str(path)
    return [
        Prompt(
            id=str(require(r, "id", src)),
            messages=require(r, "messages", src),
            gold=r.get("gold"),
            answer_fallback=r.get("answer_fallback", "none"),
            meta=r.get("meta") or {},
            text=r.get("text"),
        )
        for r in read_records(path)
    ]
