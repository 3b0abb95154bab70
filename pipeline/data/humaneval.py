"""HumanEval (`openai/openai_humaneval`): 164 Python functions to complete, checked by their unit tests."""

from __future__ import annotations

from pipeline.data.jsonl import require
from pipeline.data.prompts import chat_messages
from pipeline.data.sources import load_split
from pipeline.types import Prompt

HUB_ID = "openai/openai_humaneval"
# Offline copy under $INTUITOR_DATA_DIR (shared/data/README.md, section 8).
LOCAL_FILE = "humaneval/HumanEval.jsonl.gz"


def humaneval_question(prompt: str) -> str:
    """The chat question: complete the function given as the dataset prompt, answer with the full function."""
    return (
        "Complete the following Python function.\n\n"
        f"```python\n{prompt.rstrip()}\n```\n\n"
        "Write the complete function (signature and body), with any imports it needs, in a single "
        "```python code block."
    )


def load_humaneval(
    path: str | None, split: str, system_prompt: str | None, limit: int | None = None
) -> list[Prompt]:
    """HumanEval problems as chat prompts; meta holds what the grader runs (prompt, test, entry_point)."""
    records, source = load_split("humaneval", path, split, HUB_ID, local_file=LOCAL_FILE)
    prompts = []
    for rec in records[:limit] if limit is not None else records:
        task_id = str(require(rec, "task_id", source))
        prompt = str(require(rec, "prompt", source))
        prompts.append(
            Prompt(
                id=f"humaneval/{task_id}",
                messages=chat_messages(humaneval_question(prompt), system_prompt),
                meta={
                    "task_id": task_id,
                    "prompt": prompt,
                    "test": str(require(rec, "test", source)),
                    "entry_point": str(require(rec, "entry_point", source)),
                },
            )
        )
    return prompts
