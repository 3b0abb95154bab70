"""The check harness's mechanism, in the real sandbox: a per-run nonce that only stdin carries, the report
line found by it and taken out of stderr, and plain values that cross from the sandbox exactly (and
nothing else does). The graders built on it are attacked in test_grader_integrity.py.
"""

from __future__ import annotations

from smoke_config import benchmark_config

from pipeline.eval.check_harness import (
    NONCE_HEX,
    Outcome,
    read_outcome,
    run_jobs,
    script_job,
    value_job,
)
from pipeline.eval.sandbox import run_python

TIMEOUT_S = 5.0


def test_the_nonce_is_per_run_and_only_on_stdin() -> None:
    a, b = value_job("def f():\n    return 1", "f()"), value_job("def f():\n    return 1", "f()")
    assert a.nonce != b.nonce and len(a.nonce) == NONCE_HEX
    assert a.nonce not in a.source and a.stdin == a.nonce + "\n"
    assert script_job("print(1)", "in\n").stdin.endswith("\nin\n")


def test_report_line_is_taken_out_and_only_its_own_nonce_counts() -> None:
    job = script_job("import sys\nsys.stderr.write('debug line\\n')\nprint(input())", "hello\n")
    result = run_python(job.source, job.stdin)
    outcome = read_outcome(job, result)
    assert outcome.ok and outcome.result.stdout == "hello\n"
    assert job.nonce in result.stderr and job.nonce not in outcome.result.stderr
    assert outcome.result.stderr.strip() == "debug line"
    other = script_job("print(1)", "")
    assert read_outcome(other, result).status == "no_result"  # another run's report is no report


def _values(bodies: list[str]) -> list[Outcome]:
    jobs = [value_job(f"import collections, enum\ndef f():\n    {body}", "f()") for body in bodies]
    return run_jobs(jobs, benchmark_config("cruxeval", timeout_s=TIMEOUT_S, workers=2), desc="values")


def test_plain_values_cross_exactly_and_nothing_else_does() -> None:
    plain = (
        "return [10**5000, -7, 2.5, -0.0, float('inf'), float('nan'), 1-2j, 'é\\ud800', b'\\x00', None,"
        " True, (1,), {frozenset({1}): {'k': [()]}}, {3}]"
    )
    not_plain = [
        "return collections.OrderedDict(a=1)",
        "return collections.defaultdict(int)",
        "return collections.deque([1])",
        "return enum.IntEnum('E', 'A').A",
        "return [[1, type('T', (tuple,), {})()]]",
        "x = []\n    x.append(x)\n    return x",
        "x = []\n    for _ in range(200):\n        x = [x]\n    return x",
        "return iter([1])",
    ]
    ok, *rejected = _values([plain, *not_plain])
    assert ok.status == "ok", ok.summary()
    big, neg, half, zero, inf, nan, cplx, text, raw, none, true, tup, nested, one = ok.value
    assert big == 10**5000 and (neg, half, inf, cplx, text, raw) == (
        -7,
        2.5,
        float("inf"),
        1 - 2j,
        "é\ud800",
        b"\x00",
    )
    assert str(zero) == "-0.0" and nan != nan and none is None and true is True and type(tup) is tuple
    assert nested == {frozenset({1}): {"k": [()]}} and one == {3}
    for body, outcome in zip(not_plain, rejected, strict=True):
        assert outcome.status == "error" and "NotPlainValue" in outcome.summary()["error"], body
