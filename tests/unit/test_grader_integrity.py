"""No code grader can be gamed by the program it grades (issue 15.5), in the real sandbox.

Each grader gets hostile completions: exits before the checks (os._exit, sys.exit, SystemExit, an atexit
hook, a signal handler), always-equal objects and subclasses of int/str/list with an overridden `__eq__`,
fake success reports (the old LiveCodeBench tag read back from the program file included), hunts for the
nonce in the program file, environment, argv and stdin, and rebound builtins / stdlib functions. None may
pass; the legitimate look-alikes (stdin programs ending in sys.exit(0) or exit(), printing a lot, ...)
must. Each benchmark's cases are graded in one parallel batch (module-scoped fixtures).
"""

from __future__ import annotations

from typing import Any

import pytest
from smoke_config import benchmark_config

from pipeline.eval.runner import score
from pipeline.eval.verdict import Verdict
from pipeline.tasks import cruxeval, get_benchmark, humaneval, livecodebench
from pipeline.types import Prompt

TIMEOUT_S = 5.0

# (case id, item key, completion, expected correct, expected status or None)
Case = tuple[str, str, str, bool, str | None]

# Finds every 32-hex string in main.py, the environment, argv and what is left on stdin, writes each as a
# report in every format the harness could use, then leaves with exit status 0.
NONCE_HUNT = """
import os, re, sys
seen = open(__file__).read() + open("/proc/self/environ").read() + " ".join(sys.argv)
seen += open("/proc/self/cmdline").read() + sys.stdin.read()
for tag in set(re.findall(r"[0-9a-f]{32}|@@lcb-[0-9a-f]+@@", seen)):
    for line in (f"{tag} done", f"{tag} value ['int', '0x12']", tag + '{"passed": true, "got": "x"}'):
        os.write(2, f"\\n{line}\\n".encode())
        os.write(1, f"\\n{line}\\n".encode())
os._exit(0)
"""
ALWAYS_EQUAL = "class E:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"


def py(code: str) -> str:
    return f"```python\n{code}\n```"


def _grade(module: Any, items: dict[str, Prompt], cases: list[Case]) -> dict[str, Verdict]:
    bench = benchmark_config(module.BENCHMARK.name, timeout_s=TIMEOUT_S, workers=2)
    verdicts = module.BENCHMARK.grade([items[c[1]] for c in cases], [c[2] for c in cases], bench)
    return {c[0]: v for c, v in zip(cases, verdicts, strict=True)}


def _check(verdicts: dict[str, Verdict], case: Case, status_of: Any = None) -> None:
    name, _, _, correct, status = case
    v = verdicts[name]
    assert v.correct is correct, (name, v.detail)
    if status is not None:
        assert (status_of or (lambda d: d["status"]))(v.detail) == status, (name, v.detail)


# --- HumanEval ------------------------------------------------------------------------------------


def _he(prompt: str, test: str, entry_point: str) -> Prompt:
    return Prompt(
        id=f"he/{entry_point}", messages=[], meta={"prompt": prompt, "test": test, "entry_point": entry_point}
    )


HE_ITEMS = {
    "total": _he(
        'def total(xs):\n    """Sum of xs."""\n', "def check(c):\n    assert c([1, 2, 3]) == 6\n", "total"
    ),
    "rev": _he(
        'def rev(s):\n    """s reversed (a str or a list)."""\n',
        "def check(c):\n    assert c('ab') == 'ba'\n    assert c([1, 2]) == [2, 1]\n",
        "rev",
    ),
    # Checks through builtins and a stdlib module, like many HumanEval tests (math.fabs: HumanEval/32).
    "mean": _he(
        'def mean(xs):\n    """Mean of xs, a float."""\n',
        "import math\n\n\ndef check(c):\n    assert isinstance(c([2]), float)\n"
        "    assert abs(c([1, 2]) - 1.5) < 1e-9\n    assert len([c([1]), c([3])]) == 2\n"
        "    assert math.fabs(c([4, 6]) - 5.0) < 1e-9\n",
        "mean",
    ),
    "zeros": _he(
        'def zeros(n):\n    """A list of n zeros."""\n', "def check(c):\n    assert len(c(3)) == 3\n", "zeros"
    ),
    # The test calls a prompt helper (HumanEval/32's poly, /38's encode_cyclic).
    "quad": _he(
        'def double(x):\n    return 2 * x\n\n\ndef quad(x):\n    """4x."""\n',
        "def check(c):\n    assert c(3) == double(double(3))\n",
        "quad",
    ),
}
WRONG_TOTAL = "def total(xs):\n    return 0\n"
MEAN = "def mean(xs):\n    return sum(xs) / len(xs)\n"
HE_CASES: list[Case] = [
    ("os_exit", "total", py(WRONG_TOTAL + "import os\nos._exit(0)"), False, "no_result"),
    ("sys_exit", "total", py(WRONG_TOTAL + "import sys\nsys.exit(0)"), False, "no_result"),
    ("raise_system_exit", "total", py(WRONG_TOTAL + "raise SystemExit"), False, "no_result"),
    (
        "atexit_exit",
        "total",
        py("import atexit, os\natexit.register(os._exit, 0)\n" + WRONG_TOTAL),
        False,
        "no_result",
    ),
    (
        "signal_handler_exit",
        "total",
        py(
            "import os, signal\nsignal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
            "def total(xs):\n    os.kill(os.getpid(), signal.SIGTERM)\n    return 0"
        ),
        False,
        "no_result",
    ),
    ("exit_inside_candidate", "total", py("def total(xs):\n    raise SystemExit(0)"), False, "no_result"),
    ("nonce_hunt", "total", py(WRONG_TOTAL + NONCE_HUNT), False, "no_result"),
    ("always_equal", "total", py(ALWAYS_EQUAL + "def total(xs):\n    return E()"), False, "error"),
    (
        "int_subclass",
        "total",
        py(
            "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
            "def total(xs):\n    return I(0)"
        ),
        False,
        "error",
    ),
    (
        "str_and_list_subclasses",
        "rev",
        py(
            "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\n"
            "class L(list):\n    def __eq__(self, o):\n        return True\n"
            "def rev(s):\n    return S('') if isinstance(s, str) else L()"
        ),
        False,
        "error",
    ),
    (
        "list_of_always_equal",
        "rev",
        py(ALWAYS_EQUAL + "def rev(s):\n    return s[::-1] if isinstance(s, str) else [E(), E()]"),
        False,
        "error",
    ),
    (
        "override_abs",
        "mean",
        py(
            "import builtins\nbuiltins.abs = lambda x: 0\n"
            "def mean(xs):\n    return 5.0 if xs == [4, 6] else 2.0 if xs == [2] else 0.0"
        ),
        False,
        "error",
    ),
    (
        "override_isinstance",
        "mean",
        py(
            "import builtins\nbuiltins.isinstance = lambda *a: True\n"
            "def mean(xs):\n    r = sum(xs) / len(xs)\n    return int(r) if r == int(r) else r"
        ),
        False,
        "error",
    ),
    (
        "override_len",
        "zeros",
        py("import builtins\nbuiltins.len = lambda x: 3\ndef zeros(n):\n    return []"),
        False,
        "error",
    ),
    (
        "patch_math_inside_call",
        "mean",
        py(
            "def mean(xs):\n    import builtins, math\n    builtins.abs = math.fabs = lambda x: 0.0\n"
            "    return 1.0 * (xs == [2] or xs == [1] or xs == [3])"
        ),
        False,
        "error",
    ),
    (
        "replace_sys_modules_math",
        "mean",
        py(
            "import sys, types\nfake = types.ModuleType('math')\nfake.fabs = lambda x: 0.0\n"
            "sys.modules['math'] = fake\n" + MEAN.replace("sum(xs) / len(xs)", "float(xs[0] * 0 + 1.5)")
        ),
        False,
        "error",
    ),
    (
        "redefine_prompt_helper",
        "quad",
        py("def double(x):\n    return 0\ndef quad(x):\n    return 0"),
        False,
        "error",
    ),
    (
        "print_success",
        "total",
        py(WRONG_TOTAL + "print('ok')\nprint('All tests passed')\nimport os\nos._exit(0)"),
        False,
        "no_result",
    ),
    # Legitimate look-alikes.
    ("legit_mean", "mean", py(MEAN), True, "ok"),
    (
        "legit_prints_a_lot",
        "total",
        py("def total(xs):\n    print('x' * 100 * 1000)\n    return sum(xs)"),
        True,
        "ok",
    ),
    (
        "legit_tuple_and_none",
        "rev",
        py("def rev(s):\n    t = s[::-1]\n    print(None, (1,))\n    return t"),
        True,
        "ok",
    ),
    ("legit_helper", "quad", py("def quad(x):\n    return double(double(x))"), True, "ok"),
]


@pytest.fixture(scope="module")
def he_verdicts() -> dict[str, Verdict]:
    return _grade(humaneval, HE_ITEMS, HE_CASES)


@pytest.mark.parametrize("case", HE_CASES, ids=[c[0] for c in HE_CASES])
def test_humaneval_hostile_and_legit(he_verdicts: dict[str, Verdict], case: Case) -> None:
    _check(he_verdicts, case)


def test_humaneval_not_plain_names_the_type(he_verdicts: dict[str, Verdict]) -> None:
    assert "NotPlainValue" in he_verdicts["always_equal"].detail["error"]
    assert "'E'" in he_verdicts["always_equal"].detail["error"]


# --- CRUXEval-O -----------------------------------------------------------------------------------


def _crux(code: str, input_: str = "17", gold: str = "") -> Prompt:
    return Prompt(
        id=f"crux/{len(code)}/{input_}", messages=[], gold=gold, meta={"code": code, "input": input_}
    )


CRUX_ITEMS = {
    "num": _crux("def f(n):\n    return n + 1", gold="18"),
    "inf": _crux("def f(n):\n    return float('inf')"),
    "neg_zero": _crux("def f(n):\n    return -0.0"),
    "nan": _crux("def f(n):\n    return [float('nan')]"),
    "set": _crux("def f(s):\n    return set(s)", "'abc'"),
    "dict": _crux("def f(s):\n    return {c: i for i, c in enumerate(s)}", "'ab'"),
    "list": _crux("def f(n):\n    return [n, n]"),
    "bool": _crux("def f(n):\n    return n > 0"),
    "str_subclass": _crux("class S(str):\n    pass\ndef f(n):\n    return S(n)"),
}
EXIT_AFTER_FAIL = "(__import__('atexit').register(__import__('os')._exit, 0), 0)[1]"
CRUX_CASES: list[Case] = [
    ("os_exit", "num", "\\boxed{__import__('os')._exit(0)}", False, "not_literal"),
    ("exit", "num", "\\boxed{exit(0)}", False, "not_literal"),
    ("sys_exit", "num", "[ANSWER]__import__('sys').exit(0)[/ANSWER]", False, "not_literal"),
    ("atexit_after_failure", "num", f"\\boxed{{{EXIT_AFTER_FAIL}}}", False, "not_literal"),
    ("always_equal", "num", "\\boxed{type('E', (), {'__eq__': lambda s, o: True})()}", False, "not_literal"),
    ("prints_and_exits", "num", "\\boxed{print('ok') or __import__('os')._exit(0)}", False, "not_literal"),
    ("nan_call", "nan", "\\boxed{[float('nan')]}", False, "not_literal"),
    ("wrong_literal", "num", "\\boxed{19}", False, "wrong_answer"),
    ("tuple_is_not_list", "list", "\\boxed{(17, 17)}", False, "wrong_answer"),
    ("subclass_never_correct", "str_subclass", "\\boxed{'17'}", False, "error"),
    # Python `==` on plain values decides.
    ("legit_int", "num", "\\boxed{18}", True, "ok"),
    ("legit_float_equals_int", "num", "\\boxed{18.0}", True, "ok"),
    ("legit_inf_literal", "inf", "\\boxed{1e999}", True, "ok"),
    ("legit_zero_equals_neg_zero", "neg_zero", "\\boxed{0.0}", True, "ok"),
    ("legit_set_any_order", "set", "\\boxed{{'c', 'a', 'b'}}", True, "ok"),
    ("legit_dict_any_order", "dict", "\\boxed{{'b': 1, 'a': 0}}", True, "ok"),
    ("legit_bool_as_int", "bool", "\\boxed{1}", True, "ok"),
    ("legit_unary_plus", "num", "\\boxed{+18}", True, "ok"),
]


@pytest.fixture(scope="module")
def crux_verdicts() -> dict[str, Verdict]:
    return _grade(cruxeval, CRUX_ITEMS, CRUX_CASES)


@pytest.mark.parametrize("case", CRUX_CASES, ids=[c[0] for c in CRUX_CASES])
def test_cruxeval_hostile_and_legit(crux_verdicts: dict[str, Verdict], case: Case) -> None:
    _check(crux_verdicts, case)


def test_cruxeval_statuses_are_counted_in_metrics(crux_verdicts: dict[str, Verdict]) -> None:
    prompts = [Prompt(id=f"c{i}", messages=[]) for i in range(len(CRUX_CASES))]
    records = [
        {
            "id": p.id,
            "correct": v.correct,
            "extracted": v.extracted,
            "extraction": v.source,
            "detail": v.detail,
            "self_certainty": None,
            "length": 1,
            "clipped": False,
        }
        for p, v in zip(prompts, crux_verdicts.values(), strict=True)
    ]
    metrics = score(get_benchmark("cruxeval"), benchmark_config("cruxeval"), prompts, records)
    counts = metrics["status_counts"]
    assert counts["not_literal"] == 7 and counts["wrong_answer"] == 2 and counts["ok"] == 8
    assert sum(counts.values()) == len(CRUX_CASES)


# --- LiveCodeBench --------------------------------------------------------------------------------


def _lcb(tests: list[tuple[str, str]], testtype: str, func_name: str | None = None) -> Prompt:
    tests_ = [{"input": i, "output": o, "testtype": testtype} for i, o in tests]
    return Prompt(id="lcb", messages=[], meta={"tests": tests_, "testtype": testtype, "func_name": func_name})


LCB_ITEMS = {
    "sum": _lcb([("1 2\n", "3\n"), ("10 5\n", "15\n")], "stdin"),
    "stdin_len": _lcb([("abc\ndef\n", "8\n")], "stdin"),
    "count": _lcb([("50000\n", "\n".join(map(str, range(50000))))], "stdin"),
    "prepend": _lcb([("1\n[2, 3]", "[1, 2, 3]"), ('"ab"\n[]', '["ab"]')], "functional", "prepend"),
}
SUM = "a, b = map(int, input().split())\nprint(a + b)\n"
METHOD = "class Solution:\n    def prepend(self, x, xs):\n        return {}\n"
WRONG = METHOD.format("xs + [x]")
LCB_CASES: list[Case] = [
    ("stdin_nonce_hunt", "sum", py(NONCE_HUNT), False, "no_result"),
    (
        "stdin_answer_then_os_exit",
        "sum",
        py(SUM + "import os, sys\nsys.stdout.flush()\nos._exit(0)"),
        False,
        "no_result",
    ),
    ("stdin_os_exit_first", "sum", py("import os\nos._exit(0)\n" + SUM), False, "no_result"),
    ("stdin_crash_after_answer", "sum", py(SUM + "raise ValueError('late')"), False, "error"),
    (
        "stdin_wrong_with_fake_report",
        "sum",
        py("import sys\nprint(0)\nsys.stderr.write('0' * 32 + ' done\\n')"),
        False,
        "wrong_answer",
    ),
    ("legit_sys_exit_0", "sum", py(SUM + "import sys\nsys.exit(0)"), True, "pass"),
    ("legit_exit", "sum", py(SUM + "exit()"), True, "pass"),
    ("legit_quit", "sum", py(SUM + "quit()"), True, "pass"),
    ("legit_raise_system_exit", "sum", py(SUM + "raise SystemExit"), True, "pass"),
    ("legit_sys_exit_code", "sum", py(SUM + "import sys\nsys.exit(2)"), True, "pass"),
    (
        "legit_exit_in_function",
        "sum",
        py(
            f"import sys\ndef main():\n    {SUM.replace(chr(10), chr(10) + '    ')}"
            "sys.exit()\nif __name__ == '__main__':\n    main()"
        ),
        True,
        "pass",
    ),
    (
        "legit_thread_main",
        "sum",
        py(
            "import threading\ndef main():\n    a, b = map(int, input().split())\n"
            "    print(a + b)\nthreading.stack_size(1 << 24)\n"
            "threading.Thread(target=main).start()"
        ),
        True,
        "pass",
    ),
    ("legit_reads_all_stdin", "stdin_len", py("import sys\nprint(len(sys.stdin.read()))"), True, "pass"),
    ("legit_reads_fd_0", "stdin_len", py("print(len(open(0).read()))"), True, "pass"),
    ("legit_reads_buffer", "stdin_len", py("import sys\nprint(len(sys.stdin.buffer.read()))"), True, "pass"),
    (
        "legit_prints_a_lot",
        "count",
        py("n = int(input())\nfor i in range(n):\n    print(i)\nexit(0)"),
        True,
        "pass",
    ),
    ("func_nonce_hunt", "prepend", py(METHOD.format("[x] + xs") + NONCE_HUNT), False, "no_result"),
    ("func_always_equal", "prepend", py(ALWAYS_EQUAL + METHOD.format("E()")), False, "error"),
    (
        "func_list_subclass",
        "prepend",
        py("class L(list):\n    def __eq__(self, o):\n        return True\n" + METHOD.format("L()")),
        False,
        "error",
    ),
    (
        "func_int_subclass",
        "prepend",
        py(
            "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
            + METHOD.format("I(0)")
        ),
        False,
        "error",
    ),
    (
        "func_override_bool",
        "prepend",
        py("bool = lambda *a: True  # the old harness ran in this namespace\n" + WRONG),
        False,
        "wrong_answer",
    ),
    (
        "func_patch_json",
        "prepend",
        py('import json\njson.dumps = lambda *a, **k: \'{"passed": true, "got": ""}\'\n' + WRONG),
        False,
        "wrong_answer",
    ),
    ("func_sys_exit", "prepend", py(WRONG + "import sys\nsys.exit(0)"), False, "no_result"),
    ("func_exit_in_call", "prepend", py(METHOD.format("exit(0)")), False, "no_result"),
    ("legit_func_tuple", "prepend", py(METHOD.format("(x, *xs)")), True, "pass"),
    (
        "legit_func_main_block",
        "prepend",
        py(METHOD.format("[x] + xs") + "if __name__ == '__main__':\n    input()"),
        True,
        "pass",
    ),
]


@pytest.fixture(scope="module")
def lcb_verdicts() -> dict[str, Verdict]:
    return _grade(livecodebench, LCB_ITEMS, LCB_CASES)


@pytest.mark.parametrize("case", LCB_CASES, ids=[c[0] for c in LCB_CASES])
def test_livecodebench_hostile_and_legit(lcb_verdicts: dict[str, Verdict], case: Case) -> None:
    _check(lcb_verdicts, case, status_of=lambda d: d["tests"][0]["status"])


def test_livecodebench_early_exit_keeps_what_was_printed(lcb_verdicts: dict[str, Verdict]) -> None:
    first = lcb_verdicts["stdin_answer_then_os_exit"].detail["tests"][0]
    assert first["got"].strip() == "3" and "no harness report" in first["error"]
