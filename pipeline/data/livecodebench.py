"""LiveCodeBench code generation (`lighteval/code_generation_lite`, subset v4_v5, as the paper's lighteval).

Two record layouts give the same prompts:
- the hub's: `question_content`, `starter_code`, `public_test_cases` (a JSON string), `metadata` (a JSON
  string holding `func_name`), `question_id`, `platform`, `difficulty`, ...;
- the offline copy's (shared/data/README.md, section 5): `problem`, `starter_code`, `tests` (decoded).
Only the public tests are read (the hub's private tests are pickles; the offline copy has none), so every
item carries `meta["tests_kind"] = "public"` and the benchmark reports pass@1 on public tests.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline.data.jsonl import DataError, require
from pipeline.data.jsonl import where as record_where
from pipeline.data.prompts import chat_messages
from pipeline.data.sources import load_split
from pipeline.types import Prompt

HUB_ID = "lighteval/code_generation_lite"
HUB_CONFIG = "v4_v5"
# Offline copy under $INTUITOR_DATA_DIR: release_v5 problems of 2024-08..2025-01, public tests only.
LOCAL_FILE = "livecodebench/lcb_release_v5_2408_2502_public_tests.json"

# LiveCodeBench's code-generation instructions (lcb_runner/prompts/code_generation.py). Its own system
# message becomes the question's first line: the system slot holds the paper's training system prompt.
_INTRO = (
    "You will be given a question (problem specification) and will generate a correct Python program "
    "that matches the specification and passes all tests."
)
_FORMAT_WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
_FORMAT_STDIN = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
    "the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python "
    "program runs, it reads the inputs, runs the algorithm and writes output to STDOUT."
)

_DEF_RE = re.compile(r"^\s*def\s+(\w+)\s*\(", re.MULTILINE)


def lcb_question(problem: str, starter_code: str) -> str:
    """LiveCodeBench's generic code-generation prompt (functional: starter code; else stdin/stdout)."""
    text = f"{_INTRO}\n\n### Question:\n{problem}\n\n"
    if starter_code.strip():
        text += f"### Format: {_FORMAT_WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
    else:
        text += f"### Format: {_FORMAT_STDIN}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def _decoded(value: Any, what: str, where: str) -> Any:
    """A field the hub stores as a JSON string, decoded (already-decoded values pass through)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: field {what!r} is not valid JSON ({e.msg})") from e


def _tests(rec: dict[str, Any], source: str, where: str) -> list[dict[str, str]]:
    field = "tests" if "tests" in rec else "public_test_cases"
    tests = _decoded(require(rec, field, source), field, where)
    if not isinstance(tests, list) or not tests:
        raise DataError(f"{where}: field {field!r} must be a non-empty list of tests")
    out = []
    for t in tests:
        if not isinstance(t, dict) or not {"input", "output", "testtype"} <= t.keys():
            raise DataError(f"{where}: each test needs 'input', 'output' and 'testtype' (got {t!r:.120})")
        out.append({"input": str(t["input"]), "output": str(t["output"]), "testtype": str(t["testtype"])})
    return out


def _func_name(rec: dict[str, Any], starter_code: str, where: str) -> str:
    """LCB's metadata.func_name, else the single `def <name>(` of the starter code."""
    metadata = _decoded(rec.get("metadata") or {}, "metadata", where)
    if isinstance(metadata, dict) and metadata.get("func_name"):
        return str(metadata["func_name"])
    names = _DEF_RE.findall(starter_code)
    if len(names) != 1:
        raise DataError(f"{where}: functional problem needs one `def` in starter_code (found {names})")
    return names[0]


def load_livecodebench(
    path: str | None, split: str, system_prompt: str | None, limit: int | None = None
) -> list[Prompt]:
    """LiveCodeBench problems as chat prompts; meta holds the tests and how to call the solution."""
    # The v4_v5 subset name only applies to the default hub id.
    config = HUB_CONFIG if path in (None, HUB_ID) else None
    records, source = load_split("livecodebench", path, split, HUB_ID, config, local_file=LOCAL_FILE)
    prompts = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        # `require` adds the line (jsonl) or index (JSON array, hub) itself; `where` is the same place.
        where = record_where(rec, source)
        problem = str(require(rec, "problem" if "problem" in rec else "question_content", source))
        starter_code = str(rec.get("starter_code") or "")
        tests = _tests(rec, source, where)
        kinds = {t["testtype"] for t in tests}
        if len(kinds) != 1 or not kinds <= {"stdin", "functional"}:
            raise DataError(f"{where}: tests must all be 'stdin' or all 'functional' (got {sorted(kinds)})")
        testtype = kinds.pop()
        meta: dict[str, Any] = {
            "tests": tests,
            "tests_kind": "public",
            "testtype": testtype,
            "starter_code": starter_code,
            "func_name": _func_name(rec, starter_code, where) if testtype == "functional" else None,
        }
        # str(): the hub gives contest_date as a datetime, and meta must stay JSON-serialisable.
        meta.update(
            {k: str(rec[k]) for k in ("question_id", "platform", "difficulty", "contest_date") if k in rec}
        )
        qid = rec.get("question_id")
        prompts.append(
            Prompt(
                # The hub's question_id when there is one; the offline copy has none: its array index.
                id=f"livecodebench/{qid if qid is not None else i}",
                messages=chat_messages(lcb_question(problem, starter_code), system_prompt),
                meta=meta,
            )
        )
    return prompts
