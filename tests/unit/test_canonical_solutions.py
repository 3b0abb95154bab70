"""The code graders accept the datasets' own answers, through the same `grade` the evaluation uses, in the
real sandbox: HumanEval's canonical solutions pass 164/164, CRUXEval's recorded outputs 800/800, and on
LiveCodeBench (which ships no solutions) an oracle for each problem's first public test passes that test.

A grader that mangles programs (wrong prompt splicing, lost imports, a bad assertion form, a harness that
misreads test inputs or outputs) fails here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from smoke_config import benchmark_config, data_config

from pipeline.data.sources import load_split
from pipeline.eval.verdict import Verdict
from pipeline.tasks import get_benchmark
from pipeline.types import Prompt

# Generous per-program limit: the machine is shared, and no program here is anywhere near it.
TIMEOUT_S = 20.0


def _grade(name: str, completion: Callable[[Prompt], str]) -> list[tuple[Prompt, Verdict]]:
    bench = benchmark_config(name, timeout_s=TIMEOUT_S)
    benchmark = get_benchmark(name)
    prompts = benchmark.load(bench, data_config(), None)
    t0 = time.perf_counter()
    verdicts = benchmark.grade(prompts, [completion(p) for p in prompts], bench)
    correct = sum(v.correct for v in verdicts)
    print(f"{name}: {correct}/{len(prompts)} correct, graded in {time.perf_counter() - t0:.1f}s")
    return list(zip(prompts, verdicts, strict=True))


def _failed(graded: list[tuple[Prompt, Verdict]]) -> list[str]:
    return [f"{p.id}: {v.detail}" for p, v in graded if not v.correct]


def test_humaneval_canonical_solutions_pass() -> None:
    records, _ = load_split("humaneval", None, "test", "", local_file="humaneval/HumanEval.jsonl.gz")
    # The classic completion form, as raw text: the dataset prompt followed by the canonical body.
    solutions = {f"humaneval/{r['task_id']}": r["prompt"] + r["canonical_solution"] for r in records}
    graded = _grade("humaneval", lambda p: solutions[p.id])
    assert len(graded) == 164 and _failed(graded) == []


def test_cruxeval_given_outputs_pass() -> None:
    graded = _grade("cruxeval", lambda p: f"The output is \\boxed{{{p.gold}}}.")
    assert len(graded) == 800 and _failed(graded) == []


def _first_test_oracle(p: Prompt) -> str:
    """A program that ignores its input and emits the first public test's expected output."""
    expected = p.meta["tests"][0]["output"]
    if p.meta["testtype"] == "stdin":
        code = f"import sys\nsys.stdout.write({expected!r})"
    else:  # `json` comes from LiveCodeBench's import preamble
        method = f"def {p.meta['func_name']}(self, *args):\n        return json.loads({expected!r})"
        code = f"class Solution:\n    {method}"
    return f"```python\n{code}\n```"


def test_livecodebench_first_test_oracle() -> None:
    graded = _grade("livecodebench", _first_test_oracle)
    assert len(graded) == 279
    for p, v in graded:
        statuses = [t["status"] for t in v.detail["tests"]]
        assert statuses[0] == "pass", (p.id, v.detail)
        # The other tests run too and fail on their answer, never on the harness.
        assert set(statuses[1:]) <= {"pass", "wrong_answer"}, (p.id, v.detail)
        # Solved exactly when every test expects the first test's output.
        assert v.correct == all(t["output"] == p.meta["tests"][0]["output"] for t in p.meta["tests"])
