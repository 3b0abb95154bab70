"""Code-contest problem statements as prompts (no gold: label-free methods only).

STAND-IN data: the offline copy is the deepmind/code_contests *test* split (165 problems); the paper's
INTUITOR-Code run used the train split, which these machines do not have.
"""

from __future__ import annotations

from pipeline.config import DataConfig
from pipeline.data.jsonl import require
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.types import Prompt

HUB_ID = "deepmind/code_contests"
LOCAL_FILE = "code_contests_proxy/code_contests_test_rllm.json"


def load_code_contests(
    path: str | None, split: str, system_prompt: str | None, limit: int | None = None
) -> list[Prompt]:
    records, source = load_split("code_contests", path, split, HUB_ID, local_file=LOCAL_FILE)
    field = "problem" if records and "problem" in records[0] else "description"
    rows = records[:limit] if limit is not None else records
    return [
        Prompt(
            id=f"code_contests/{split}/{i}", messages=chat_messages(require(r, field, source), system_prompt)
        )
        for i, r in enumerate(rows)
    ]


def training_prompts(cfg: DataConfig, system_prompt: str | None, screen: RecordScreen) -> list[Prompt]:
    """Problem statements without gold (label-free methods only); the screen counts them."""
    prompts = load_code_contests(cfg.path, cfg.split, system_prompt, cfg.limit)
    return screen.finish(cfg.path or cfg.name, prompts)
