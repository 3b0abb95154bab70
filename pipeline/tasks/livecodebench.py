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

Data: LiveCodeBench code generation (`lighteval/code_generation_lite`, subset v4_v5, as the paper's
lighteval).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.jsonl import DataError, require
from pipeline.data.jsonl import where as record_where
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen
from pipeline.data.sources import load_split
from pipeline.eval.check_harness import HarnessJob, Outcome, call_job, plain_equal, run_jobs, script_job, show
from pipeline.eval.code_exec import clip
from pipeline.eval.code_extraction import extract_code
from pipeline.eval.verdict import Verdict
from pipeline.tasks import Benchmark
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
