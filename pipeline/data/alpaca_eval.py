"""AlpacaEval 2.0 (`tatsu-lab/alpaca_eval`, config alpaca_eval_gpt4_baseline, split eval): 805 instructions.

Each record also holds the reference model's answer (gpt4_1106_preview, the AlpacaEval 2.0 baseline); it
is kept in `Prompt.meta` because the pairwise judge compares every model output against it. The position
of an instruction in the 805-item set is kept too: the length-controlled win rate looks up a per-instruction
difficulty by that position.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.jsonl import DataError
from pipeline.data.prompts import chat_messages
from pipeline.data.sources import load_split
from pipeline.types import Prompt

HUB_ID = "tatsu-lab/alpaca_eval"
HUB_CONFIG = "alpaca_eval_gpt4_baseline"
# Offline copy: the reference model's outputs file, which holds the instructions (data README section 7).
FILE_NAME = "alpaca_eval_gpt4_baseline.json"
_FIELDS = ("instruction", "output", "generator", "dataset")


def load_alpaca_eval(
    path: str | None, split: str = "eval", system_prompt: str | None = None, limit: int | None = None
) -> list[Prompt]:
    """Every instruction in dataset order, as chat prompts; meta holds the reference output for the judge.

    `path`: null ($INTUITOR_DATA_DIR/alpaca_eval/ or the hub), the reference-outputs json file, a folder
    holding it, or a hub id.
    """
    if path is not None and Path(path).is_dir():
        path = str(Path(path) / FILE_NAME)
    records, source = load_split(
        "alpaca_eval", path, split, HUB_ID, hub_config=HUB_CONFIG, local_file=f"alpaca_eval/{FILE_NAME}"
    )
    prompts = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        # A json array has no lines to name: errors give the record's position instead.
        missing = [f for f in _FIELDS if not isinstance(rec.get(f), str)]
        if missing:
            present = sorted(k for k in rec if not k.startswith("_"))
            raise DataError(f"{source}: record {i}: lacks string field(s) {missing} (has {present})")
        prompts.append(
            Prompt(
                id=f"alpaca_eval/{split}/{i}",
                messages=chat_messages(rec["instruction"], system_prompt),
                meta={
                    "dataset": rec["dataset"],
                    "index": i,
                    "reference_output": rec["output"],
                    "reference_generator": rec["generator"],
                },
            )
        )
    return prompts
