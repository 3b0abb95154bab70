"""CRUXEval (`cruxeval-org/cruxeval`) for CRUXEval-O: given f and an input, predict the output."""

from __future__ import annotations

from pipeline.data.jsonl import require
from pipeline.data.prompts import chat_messages
from pipeline.data.sources import load_split
from pipeline.types import Prompt

HUB_ID = "cruxeval-org/cruxeval"
# Offline copy under $INTUITOR_DATA_DIR (shared/data/README.md, section 4).
LOCAL_FILE = "cruxeval/cruxeval.jsonl"


def cruxeval_output_question(code: str, input_: str) -> str:
    """CRUXEval's chain-of-thought output-prediction instruction, with the answer asked for in a box.

    The wording is CRUXEval's (`make_cot_output_prompt`) minus its few-shot [ANSWER] examples: the chat
    system prompt of the paper asks for a boxed final answer, so the box replaces the [ANSWER] tags.
    """
    return (
        "You are given a Python function and an assertion containing an input to the function. Complete the "
        "assertion with a literal (no unsimplified expressions, no function calls) containing the output "
        "when executing the provided code on the given input, even if the function is incorrect or "
        "incomplete. Execute the program step by step before arriving at an answer.\n\n"
        f"```python\n{code}\nassert f({input_}) == ??\n```\n\n"
        "Give the final answer as the literal alone (not the whole assertion) inside \\boxed{}."
    )


def load_cruxeval(
    path: str | None, split: str, system_prompt: str | None, limit: int | None = None
) -> list[Prompt]:
    """CRUXEval-O items: gold = the output literal; meta holds the code and input the grader runs."""
    records, source = load_split("cruxeval", path, split, HUB_ID, local_file=LOCAL_FILE)
    prompts = []
    for rec in records[:limit] if limit is not None else records:
        code = str(require(rec, "code", source))
        input_ = str(require(rec, "input", source))
        prompts.append(
            Prompt(
                id=f"cruxeval/{require(rec, 'id', source)}",
                messages=chat_messages(cruxeval_output_question(code, input_), system_prompt),
                gold=str(require(rec, "output", source)),
                meta={"code": code, "input": input_},
            )
        )
    return prompts
