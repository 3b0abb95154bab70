"""HumanEval: the completed function must pass the dataset's `check(<entry_point>)` in the sandbox.

The program is human-eval's (prompt + completion + test + check) adapted to chat answers:
- the extracted code defines `entry_point`: it is a full function. The dataset prompt still goes first, so
  its imports and helper functions (e.g. HumanEval/10's `is_palindrome`) stay available; the completion's
  definition replaces the prompt's stub.
- it does not: it is a body continuing the prompt (the classic completion form), indented if the model
  wrote it flush left.
"""

from __future__ import annotations

import re
import textwrap

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.humaneval import load_humaneval
from pipeline.data.screen import RecordScreen
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.code_exec import NOT_MAIN, run_programs, run_summary
from pipeline.eval.code_extraction import extract_code
from pipeline.eval.verdict import Verdict
from pipeline.types import Prompt


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data, screen  # no math-verify gold to screen (load_benchmark counts the items)
    return load_humaneval(bench.path, bench.split, system_prompt)


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def build_program(code: str, meta: dict[str, str]) -> tuple[str, str]:
    """(program, mode): mode "function" (code defines entry_point) or "body" (code continues the prompt)."""
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
    program = f"{NOT_MAIN}{solution}\n\n{meta['test']}\n\ncheck({entry_point})\n"
    return program, mode


def grade(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    """Run each completion against its problem's unit tests; correct iff the program exits cleanly."""
    extractions = [extract_code(c) for c in completions]
    built = [build_program(e.code, p.meta) for p, e in zip(prompts, extractions, strict=True)]
    results = run_programs([(program, "") for program, _ in built], bench, desc="humaneval")
    verdicts = []
    for e, (_, mode), r in zip(extractions, built, results, strict=True):
        detail = {"mode": mode, "language": e.language, **run_summary(r)}
        correct = r.ok and e.source != "none"
        verdicts.append(Verdict(correct=correct, extracted=e.code or None, source=e.source, detail=detail))
    return verdicts


BENCHMARK = Benchmark(name="humaneval", load=load, grade=grade, metric="pass_at_1")
