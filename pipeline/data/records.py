"""Prompts <-> jsonl records: what prepare_data writes and train/evaluate read."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.data.jsonl import read_records, require
from pipeline.types import Prompt


def write_prompts(prompts: list[Prompt], path: Path) -> None:
    """One record per prompt, written atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for p in prompts:
            rec = {"id": p.id, "messages": p.messages, "gold": p.gold, "answer_fallback": p.answer_fallback}
            f.write(json.dumps({**rec, "meta": p.meta}) + "\n")
    os.replace(tmp, path)


def read_prompts(path: Path) -> list[Prompt]:
    src = str(path)
    return [
        Prompt(
            id=str(require(r, "id", src)),
            messages=require(r, "messages", src),
            gold=r.get("gold"),
            answer_fallback=r.get("answer_fallback", "none"),
            meta=r.get("meta") or {},
        )
        for r in read_records(path)
    ]
