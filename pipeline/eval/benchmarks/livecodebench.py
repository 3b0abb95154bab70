"""LiveCodeBench code generation: a problem passes iff the extracted program passes every one of its tests.

Grading follows LiveCodeBench's `lcb_runner/evaluation/testing_util.py`, one sandboxed process per test:
- the program is prefixed with LCB's import preamble (starter code uses `List` etc. without importing it);
- stdin tests: the program reads the test input on stdin; its stdout matches when, after stripping the
  whole text and each line, the lines are equal one by one, or both lines parse as the same decimals;
- functional tests: `Solution().<func_name>(*args)` (or the module-level function when the code defines no
  `Solution`) with one JSON value per input line; the result, a tuple turned into a list, must equal
  `json.loads(output)` under Python `==`.
Every test runs under the check harness (`pipeline/eval/check_harness.py`), which reports to the parent
with a per-run nonce the program never sees. Stdin tests (mode `script`) pass only if the program ended
normally (returned, or raised SystemExit: `sys.exit(0)` / `exit()` are fine) and its stdout matches; an
`os._exit` or a crash is no pass whatever it printed (`no_result`, with the output in `got`; `error`).
Functional tests (mode `call`) report the returned value only if it is a plain builtin value (exact types,
recursively: an always-equal object or a subclass of int/str/list is an `error`); it is compared in the
parent, and the expected output never enters the sandbox.
The offline copy has public tests only, so the metric is pass_at_1_public.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.livecodebench import load_livecodebench
from pipeline.data.screen import RecordScreen
from pipeline.eval.benchmarks import Benchmark
from pipeline.eval.check_harness import HarnessJob, Outcome, call_job, plain_equal, run_jobs, script_job, show
from pipeline.eval.code_exec import clip
from pipeline.eval.code_extraction import extract_code
from pipeline.eval.verdict import Verdict
from pipeline.types import Prompt

# LiveCodeBench's `import_string`, prepended to every program it runs.
IMPORT_PREAMBLE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\n"
    "import collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\n"
    "import statistics\nimport itertools\nimport functools\nimport operator\nimport io\nimport sys\n"
    "import json\nsys.setrecursionlimit(50000)\n"
)

# Per-test statuses kept in Verdict.detail (public tests number 1-6; a bound for other test sets).
MAX_TESTS_IN_DETAIL = 20


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    del data, screen  # no math-verify gold to screen (load_benchmark counts the items)
    return load_livecodebench(bench.path, bench.split, system_prompt)


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(tok) for tok in line.split()]
    except InvalidOperation:
        return None


def stdout_matches(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin comparison: stripped lines equal, or equal as decimals line by line."""
    got_lines = [ln.strip() for ln in got.strip().split("\n")]
    exp_lines = [ln.strip() for ln in expected.strip().split("\n")]
    if len(got_lines) != len(exp_lines):
        return False
    for g, e in zip(got_lines, exp_lines, strict=True):
        if g == e:
            continue
        g_dec, e_dec = _decimals(g), _decimals(e)
        if g_dec is None or e_dec is None:
            return False
        try:
            if g_dec != e_dec:
                return False
        except InvalidOperation:  # a signalling NaN ("sNaN") refuses comparison
            return False
    return True


def _job(code: str, test: dict[str, str], func_name: str | None) -> HarnessJob:
    program = IMPORT_PREAMBLE + "\n" + code + "\n"
    if test["testtype"] == "stdin":
        # Run as `__main__` (LCB unwraps `if __name__ == "__main__":` so such blocks do run).
        return script_job(program, test["input"])
    # LCB execs call-based code as a module: demo `__main__` blocks do not run.
    return call_job(program, func_name or "", test["input"])


def _test_status(outcome: Outcome, test: dict[str, str]) -> dict[str, Any]:
    """pass | wrong_answer | a harness/sandbox failure status, with what was seen when it did not pass."""
    if not outcome.ok:
        summary = outcome.summary()
        if test["testtype"] == "stdin" and outcome.status == "no_result":
            summary["got"] = clip(outcome.result.stdout)  # what it printed before leaving early
        return summary
    if test["testtype"] == "stdin":
        if stdout_matches(outcome.result.stdout, test["output"]):
            return {"status": "pass"}
        return {"status": "wrong_answer", "got": clip(outcome.result.stdout)}
    got = list(outcome.value) if isinstance(outcome.value, tuple) else outcome.value
    if plain_equal(got, json.loads(test["output"])):
        return {"status": "pass"}
    return {"status": "wrong_answer", "got": show(got)}


def grade(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    """Run every (completion, test) pair in the sandbox in parallel; a problem passes iff all tests do."""
    extractions = [extract_code(c) for c in completions]
    jobs: list[HarnessJob] = []
    owners: list[tuple[int, dict[str, str]]] = []
    for i, (p, e) in enumerate(zip(prompts, extractions, strict=True)):
        if e.source == "none":
            continue  # nothing to run: the verdict is a fail without spending a process per test
        for test in p.meta["tests"]:
            jobs.append(_job(e.code, test, p.meta.get("func_name")))
            owners.append((i, test))
    statuses: list[list[dict[str, Any]]] = [[] for _ in prompts]
    for (i, test), outcome in zip(owners, run_jobs(jobs, bench, desc="livecodebench"), strict=True):
        statuses[i].append(_test_status(outcome, test))
    verdicts = []
    for p, e, st in zip(prompts, extractions, statuses, strict=True):
        passed = bool(st) and all(s["status"] == "pass" for s in st)
        detail = {
            "tests_kind": p.meta.get("tests_kind", "public"),
            "n_tests": len(p.meta["tests"]),
            "n_passed": sum(s["status"] == "pass" for s in st),
            "language": e.language,
            "tests": st[:MAX_TESTS_IN_DETAIL],
        }
        verdicts.append(Verdict(correct=passed, extracted=e.code or None, source=e.source, detail=detail))
    return verdicts


BENCHMARK = Benchmark(
    name="livecodebench", load=load, grade=grade, metric="pass_at_1_public", category_key="testtype"
)
