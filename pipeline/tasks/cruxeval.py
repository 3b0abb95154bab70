"""CRUXEval-O: the predicted output is correct iff it is a literal equal to `f(<input>)` run in the sandbox.

The prediction is read from the completion in this order (the order is recorded in Verdict.source):
1. "boxed": the last `\boxed{...}` (the paper's system prompt asks for a box), via the math grader's
   brace-balanced extractor, so dict / set literals keep their braces;
2. "answer_tag": the last `[ANSWER] ... [/ANSWER]` (CRUXEval's own few-shot format);
3. "assert": the last `assert f(...) == X` line.
A prediction written as a whole assertion (`assert f(1) == 2`) is reduced to its right-hand side, as
CRUXEval's post-processing does.

The prediction must be a Python literal (`ast.literal_eval`), as CRUXEval's outputs are: anything else is
wrong without running (status `not_literal`; one that calls `f` is `calls_f`, as CRUXEval rejects it).
`f(<input>)` is computed in the sandbox (the dataset's code, then the call, one fresh process per item)
by the check harness (`pipeline/eval/check_harness.py`, mode `value`), which reports the result only if it
is a plain builtin value; the parent compares it with the literal under Python `==`, as
`assert f(<input>) == <prediction>` would on plain values. No part of the prediction ever runs, so it
cannot exit early, print a fake report or return an always-equal object; a wrong literal is
`wrong_answer`. Each distinct item runs once, however many predictions it has.

Data: CRUXEval (`cruxeval-org/cruxeval`) for CRUXEval-O: given f and an input, predict the output.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.jsonl import require
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.eval.check_harness import plain_equal, run_jobs, value_job
from pipeline.eval.math_grader import extract_boxed
from pipeline.eval.verdict import Verdict
from pipeline.tasks import Benchmark
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


_ANSWER_TAG_RE = re.compile(r"\[ANSWER\](.*?)\[/ANSWER\]", re.DOTALL)
_ASSERT_LINE_RE = re.compile(r"^[ \t]*assert\s+f\s*\(.*==.*$", re.MULTILINE)
# Markdown the model may wrap a literal in: surrounding backticks, or a one-line code fence.
_WRAPPER_RE = re.compile(r"^```(?:python|py)?\s*\n?(.*?)\n?```$|^`([^`]*)`$", re.DOTALL)


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data, screen  # no math-verify gold to screen (load_benchmark counts the items)
    return load_cruxeval(bench.path, bench.split, system_prompt)


def _rhs_of_assert(text: str) -> str:
    """`assert f(...) == X` -> `X` (source text); anything else unchanged."""
    text = text.strip()
    if not text.startswith("assert"):
        return text
    try:
        node = ast.parse(text).body[0]
    except SyntaxError:
        # Not valid Python: split at the first `==`, as CRUXEval does.
        return text.split("==", 1)[1].strip() if "==" in text else text
    if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1:
        segment = ast.get_source_segment(text, node.test.comparators[0])
        if isinstance(node.test.ops[0], ast.Eq) and segment is not None:
            return segment.strip()
    return text


def extract_prediction(completion: str) -> tuple[str | None, str]:
    """(predicted output literal or None, where it came from: boxed | answer_tag | assert | none)."""
    found: tuple[str, str] | None = None
    if (boxed := extract_boxed(completion)) is not None:
        found = (boxed, "boxed")
    elif tags := _ANSWER_TAG_RE.findall(completion):
        found = (tags[-1], "answer_tag")
    elif lines := _ASSERT_LINE_RE.findall(completion):
        found = (lines[-1], "assert")
    if found is None:
        return None, "none"
    text = found[0].strip()
    if (m := _WRAPPER_RE.match(text)) is not None:
        text = (m.group(1) if m.group(1) is not None else m.group(2)).strip()
    text = _rhs_of_assert(text)
    return (text or None), found[1]


def _calls_f(prediction: str) -> bool:
    """True if the prediction parses as an expression that calls `f` anywhere."""
    try:
        tree = ast.parse(prediction, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "f" for n in ast.walk(tree)
    )


def parse_literal(prediction: str) -> tuple[bool, Any]:
    """(True, value) if the prediction is a Python literal, else (False, None)."""
    try:
        return True, ast.literal_eval(prediction.strip())
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return False, None  # ValueError also covers ints past the int-from-str digit limit


def grade(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    """Compare each literal prediction with `f(input)` as computed once per item in the sandbox."""
    predictions = [extract_prediction(c) for c in completions]
    literals: dict[int, Any] = {}
    statuses: dict[int, str] = {}
    for i, (pred, _) in enumerate(predictions):
        if pred is None:
            statuses[i] = "no_prediction"
        elif _calls_f(pred):
            statuses[i] = "calls_f"
        elif (parsed := parse_literal(pred))[0]:
            literals[i] = parsed[1]
        else:
            statuses[i] = "not_literal"
    keys: dict[tuple[str, str], int] = {}
    for i in literals:
        keys.setdefault((prompts[i].meta["code"], prompts[i].meta["input"]), len(keys))
    jobs = [value_job(code, f"f({input_})") for code, input_ in keys]
    outcomes = run_jobs(jobs, bench, desc="cruxeval")
    verdicts = []
    for i, (pred, source) in enumerate(predictions):
        if i not in literals:
            detail = {"status": statuses[i]}
            verdicts.append(Verdict(correct=False, extracted=pred, source=source, detail=detail))
            continue
        o = outcomes[keys[(prompts[i].meta["code"], prompts[i].meta["input"])]]
        detail = o.summary()
        correct = o.ok and plain_equal(o.value, literals[i])
        if o.ok and not correct:
            detail["status"] = "wrong_answer"
        verdicts.append(Verdict(correct=correct, extracted=pred, source=source, detail=detail))
    return verdicts


BENCHMARK = Benchmark(name="cruxeval", load=load, grade=grade, metric="accuracy")
