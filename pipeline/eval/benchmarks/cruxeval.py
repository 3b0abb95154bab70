"""CRUXEval-O: the predicted output is correct iff `assert f(<input>) == <prediction>` passes in the sandbox.

The prediction is read from the completion in this order (the order is recorded in Verdict.source):
1. "boxed": the last `\\boxed{...}` (the paper's system prompt asks for a box), via the math grader's
   brace-balanced extractor, so dict / set literals keep their braces;
2. "answer_tag": the last `[ANSWER] ... [/ANSWER]` (CRUXEval's own few-shot format);
3. "assert": the last `assert f(...) == X` line.
A prediction written as a whole assertion (`assert f(1) == 2`) is reduced to its right-hand side, as
CRUXEval's post-processing does.

Execution follows CRUXEval's harness (the dataset's code, then one assertion, in a fresh process) with two
guards the instruction ("a literal, no function calls") implies: a prediction that calls `f` is wrong
without running (`f(x)` would otherwise trivially equal itself; CRUXEval rejects it the same way), and the
prediction is parenthesised so that `1 or True` cannot turn the comparison into a different assertion.
"""

from __future__ import annotations

import ast
import re

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.cruxeval import load_cruxeval
from pipeline.data.screen import RecordScreen
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.code_exec import run_programs, run_summary
from pipeline.eval.math_grader import extract_boxed
from pipeline.eval.verdict import Verdict
from pipeline.types import Prompt

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
    except SyntaxError:
        return False  # left to the sandbox, which reports the syntax error
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "f" for n in ast.walk(tree)
    )


def build_program(code: str, input_: str, prediction: str) -> str:
    """The dataset's function and the one assertion CRUXEval checks (prediction on its own lines)."""
    return f"{code}\nassert f({input_}) == (\n{prediction}\n)\n"


def grade(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    """Execute each prediction's assertion in its own sandboxed process."""
    predictions = [extract_prediction(c) for c in completions]
    runnable = [i for i, (pred, _) in enumerate(predictions) if pred is not None and not _calls_f(pred)]
    jobs = [
        (build_program(prompts[i].meta["code"], prompts[i].meta["input"], predictions[i][0] or ""), "")
        for i in runnable
    ]
    results = dict(zip(runnable, run_programs(jobs, bench, desc="cruxeval"), strict=True))
    verdicts = []
    for i, (pred, source) in enumerate(predictions):
        if i in results:
            r = results[i]
            verdicts.append(Verdict(correct=r.ok, extracted=pred, source=source, detail=run_summary(r)))
        else:
            status = "no_prediction" if pred is None else "calls_f"
            verdicts.append(Verdict(correct=False, extracted=pred, source=source, detail={"status": status}))
    return verdicts


BENCHMARK = Benchmark(name="cruxeval", load=load, grade=grade, metric="accuracy")
