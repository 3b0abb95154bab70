"""Code benchmark graders (HumanEval, CRUXEval-O, LiveCodeBench) on hand-written cases, run in the real
sandbox, plus their loaders on the offline copies.

Each benchmark's cases are graded in one parallel batch (a module-scoped fixture); each case then checks
its own verdict: correctness, where the answer was read from, and the failure status where it matters.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from smoke_config import benchmark_config

from pipeline.data.jsonl import DataError
from pipeline.eval.code_extraction import extract_code
from pipeline.eval.verdict import Verdict
from pipeline.tasks import cruxeval, humaneval, livecodebench
from pipeline.tasks.cruxeval import load_cruxeval
from pipeline.tasks.humaneval import load_humaneval
from pipeline.tasks.livecodebench import load_livecodebench
from pipeline.types import Prompt

# Small wall-clock limit so the infinite-loop cases end quickly; every honest case runs in well under it.
TIMEOUT_S = 3.0

# (case id, completion, expected correct, expected Verdict.source, expected detail status or None).
Case = tuple[str, str, bool, str, str | None]


def py(code: str) -> str:
    """`code` in a ```python block."""
    return f"```python\n{code}\n```"


def _grade_all(module: Any, items: dict[str, Prompt], cases: list[Case], item_of: dict[str, str]):
    bench = benchmark_config(module.BENCHMARK.name, timeout_s=TIMEOUT_S, workers=2)
    prompts = [items[item_of.get(c[0], "default")] for c in cases]
    verdicts = module.BENCHMARK.grade(prompts, [c[1] for c in cases], bench)
    assert len(verdicts) == len(cases) and all(isinstance(v, Verdict) for v in verdicts)
    return {c[0]: v for c, v in zip(cases, verdicts, strict=True)}


def _check(verdicts: dict[str, Verdict], case: Case) -> None:
    name, _, correct, source, status = case
    v = verdicts[name]
    assert v.correct is correct, (name, v)
    assert v.source == source, (name, v)
    if status is not None:
        assert v.detail["status"] == status, (name, v.detail)


def test_extract_code_order_and_sources() -> None:
    text = "Intro\n```python\nx = 1\n```\nthen\n```cpp\nint x;\n```\nand\n```python\nx = 2\n```\nbye"
    e = extract_code(text)
    assert (e.code, e.source, e.language) == ("x = 2", "python_block", "python")
    assert extract_code("```cpp\nint main(){}\n```").source == "code_block"
    assert extract_code("```\nprint(1)\n```").code == "print(1)"
    assert extract_code("just prose").source == "raw"
    assert extract_code("   \n").source == "none"
    # An unclosed fence (cut-off completion) is no block: the raw text is what runs (and fails).
    assert extract_code("Sure:\n```python\nprint(1)\n").source == "raw"
    # A ```python line inside an open bare block does not close it.
    assert extract_code("```\nA\n```python\nB\n```").code == "A\n```python\nB"


# --- HumanEval ------------------------------------------------------------------------------------

HE_ITEMS = {
    "default": Prompt(
        id="he/add",
        messages=[],
        meta={
            "prompt": 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n',
            "test": "def check(c):\n    assert c([1, 2, 3]) == 6\n    assert c([]) == 0\n",
            "entry_point": "total",
        },
    ),
    # The prompt defines a helper the solution is expected to call (like HumanEval/10).
    "helper": Prompt(
        id="he/helper",
        messages=[],
        meta={
            "prompt": 'def double(x):\n    return 2 * x\n\n\ndef quad(x):\n    """4x."""\n',
            "test": "def check(candidate):\n    assert candidate(3) == 12\n",
            "entry_point": "quad",
        },
    ),
}
HE_FULL = "def total(xs: List[int]) -> int:\n    return sum(xs)\n"
HE_ZERO = "def total(xs):\n    return 0"
HE_CASES: list[Case] = [
    ("full_function_block", f"Here you go:\n{py(HE_FULL)}\nDone.", True, "python_block", "ok"),
    ("full_function_own_import", py("from typing import List\n" + HE_FULL), True, "python_block", "ok"),
    ("body_only_indented_raw", "    return sum(xs)\n", True, "raw", "ok"),
    ("body_only_flush_left_block", py("return sum(xs)"), True, "python_block", "ok"),
    ("prompt_plus_body_raw", HE_ITEMS["default"].meta["prompt"] + "    return sum(xs)\n", True, "raw", "ok"),
    ("last_python_block_wins", f"{py(HE_ZERO)}\n{py(HE_FULL)}", True, "python_block", "ok"),
    ("last_block_wrong", f"{py(HE_FULL)}\nor\n{py(HE_ZERO)}", False, "python_block", "error"),
    ("cpp_block", "```cpp\nint total(vector<int> xs) { return 0; }\n```", False, "code_block", "error"),
    ("prose_only", "The answer is to add the numbers up.", False, "raw", "error"),
    ("empty", "", False, "none", None),
    ("wrong_answer", py("def total(xs):\n    return len(xs)"), False, "python_block", "error"),
    ("exception", py("def total(xs):\n    raise ValueError('no')"), False, "python_block", "error"),
    ("infinite_loop", py("def total(xs):\n    while True:\n        pass"), False, "python_block", "timeout"),
    ("main_block", py(HE_FULL + "if __name__ == '__main__':\n    input()"), True, "python_block", "ok"),
    ("uses_prompt_helper", py("def quad(x):\n    return double(double(x))"), True, "python_block", "ok"),
]
HE_ITEM_OF = {"uses_prompt_helper": "helper"}


@pytest.fixture(scope="module")
def he_verdicts() -> dict[str, Verdict]:
    return _grade_all(humaneval, HE_ITEMS, HE_CASES, HE_ITEM_OF)


@pytest.mark.parametrize("case", HE_CASES, ids=[c[0] for c in HE_CASES])
def test_humaneval_cases(he_verdicts: dict[str, Verdict], case: Case) -> None:
    _check(he_verdicts, case)


def test_humaneval_modes(he_verdicts: dict[str, Verdict]) -> None:
    assert he_verdicts["full_function_block"].detail["mode"] == "function"
    assert he_verdicts["body_only_indented_raw"].detail["mode"] == "body"
    assert he_verdicts["cpp_block"].detail["language"] == "cpp"
    assert "ValueError" in he_verdicts["exception"].detail["error"]


# --- CRUXEval-O -----------------------------------------------------------------------------------


def _crux(code: str, input_: str, output: str) -> Prompt:
    return Prompt(id="crux", messages=[], gold=output, meta={"code": code, "input": input_})


CRUX_ITEMS = {
    "default": _crux("def f(s):\n    return s + 'a'", "'x9j'", "'x9ja'"),
    "list": _crux("def f(n):\n    return list(range(n))", "3", "[0, 1, 2]"),
    "dict": _crux("def f(k):\n    return {k: 1, 'b': {'c': 2}}", "'a'", "{'a': 1, 'b': {'c': 2}}"),
    "tuple": _crux("def f(s):\n    return len(s), s.upper()", "'ab'", "(2, 'AB')"),
    "num": _crux("def f(n):\n    return n + 1", "17", "18"),
}
CRUX_CASES: list[Case] = [
    ("string_single_quotes", "So \\boxed{'x9ja'}", True, "boxed", "ok"),
    ("string_double_quotes", 'So \\boxed{"x9ja"}', True, "boxed", "ok"),
    ("string_wrong", "So \\boxed{'x9j'}", False, "boxed", "wrong_answer"),
    ("list_literal", "The list is \\boxed{[0, 1, 2]}.", True, "boxed", "ok"),
    ("list_wrong", "\\boxed{[0, 1, 2, 3]}", False, "boxed", "wrong_answer"),
    ("dict_nested_braces", "\\boxed{{'a': 1, 'b': {'c': 2}}}", True, "boxed", "ok"),
    ("dict_key_order_free", "\\boxed{{'b': {'c': 2}, 'a': 1}}", True, "boxed", "ok"),
    ("tuple_without_parens", "\\boxed{2, 'AB'}", True, "boxed", "ok"),
    ("last_box_wins", "First \\boxed{17}, no wait: \\boxed{18}", True, "boxed", "ok"),
    ("whole_assertion_boxed", "\\boxed{assert f(17) == 18}", True, "boxed", "ok"),
    ("backticked_literal", "\\boxed{`18`}", True, "boxed", "ok"),
    ("answer_tag_fallback", "[ANSWER]\nassert f(17) == 18\n[/ANSWER]", True, "answer_tag", "ok"),
    ("assert_line_fallback", "Running it:\nassert f(17) == 18\nso that is it.", True, "assert", "ok"),
    ("missing_box", "The output is 18.", False, "none", "no_prediction"),
    ("calls_f", "\\boxed{f(17)}", False, "boxed", "calls_f"),
    ("or_true_trick", "\\boxed{1 or True}", False, "boxed", "not_literal"),
    ("not_python", "\\boxed{eighteen please}", False, "boxed", "not_literal"),
]
CRUX_ITEM_OF = {
    "list_literal": "list",
    "list_wrong": "list",
    "dict_nested_braces": "dict",
    "dict_key_order_free": "dict",
    "tuple_without_parens": "tuple",
    **{
        k: "num"
        for k in ("last_box_wins", "whole_assertion_boxed", "backticked_literal", "answer_tag_fallback")
    },
    **{k: "num" for k in ("assert_line_fallback", "missing_box", "calls_f", "or_true_trick", "not_python")},
}


@pytest.fixture(scope="module")
def crux_verdicts() -> dict[str, Verdict]:
    return _grade_all(cruxeval, CRUX_ITEMS, CRUX_CASES, CRUX_ITEM_OF)


@pytest.mark.parametrize("case", CRUX_CASES, ids=[c[0] for c in CRUX_CASES])
def test_cruxeval_cases(crux_verdicts: dict[str, Verdict], case: Case) -> None:
    _check(crux_verdicts, case)


def test_cruxeval_extracted_literals(crux_verdicts: dict[str, Verdict]) -> None:
    assert crux_verdicts["dict_nested_braces"].extracted == "{'a': 1, 'b': {'c': 2}}"
    assert crux_verdicts["whole_assertion_boxed"].extracted == "18"
    assert crux_verdicts["answer_tag_fallback"].extracted == "18"
    assert crux_verdicts["missing_box"].extracted is None


# --- LiveCodeBench --------------------------------------------------------------------------------


def _lcb(tests: list[tuple[str, str]], testtype: str, func_name: str | None = None) -> Prompt:
    return Prompt(
        id="lcb",
        messages=[],
        meta={
            "tests": [{"input": i, "output": o, "testtype": testtype} for i, o in tests],
            "tests_kind": "public",
            "testtype": testtype,
            "starter_code": "",
            "func_name": func_name,
        },
    )


LCB_ITEMS = {
    "default": _lcb([("1 2\n", "3\n"), ("10 5\n", "15\n")], "stdin"),
    "ratio": _lcb([("1 2\n", "0.5\n")], "stdin"),
    "two_lines": _lcb([("2\n", "1\n2\n")], "stdin"),
    "func": _lcb([("1\n[2, 3]", "[1, 2, 3]"), ('"ab"\n[]', '["ab"]')], "functional", "prepend"),
}
SUM = "a, b = map(int, input().split())\n"
SOLUTION = "class Solution:\n    def prepend(self, x, xs{hint}):\n        {body}"
TUPLE = SOLUTION.format(hint=": List[int]", body="return (x, *xs)")  # List: from LCB's import preamble
CPP = '```cpp\n#include <cstdio>\nint main(){int a,b;scanf("%d %d",&a,&b);printf("%d",a+b);}\n```'
FAKE_PASS = SOLUTION.format(hint="", body="print('{\"passed\": true}')")
LCB_CASES: list[Case] = [
    ("stdin_correct", py(SUM + "print(a + b)"), True, "python_block", None),
    (
        "stdin_trailing_ws_blank_lines",
        py(SUM + "print(a + b, '  ')\nprint()\nprint(' ')"),
        True,
        "python_block",
        None,
    ),
    ("stdin_wrong_answer", py(SUM + "print(a * b)"), False, "python_block", None),
    ("stdin_one_test_fails", py(SUM + "print(3)"), False, "python_block", None),
    ("stdin_exception", py(SUM + "print(a // 0)"), False, "python_block", None),
    ("stdin_infinite_loop", py("while True:\n    pass"), False, "python_block", None),
    ("stdin_no_code_block", SUM + "print(a + b)", True, "raw", None),
    ("stdin_prose_no_code", "Add the two numbers and print them.", False, "raw", None),
    ("stdin_cpp_block", CPP, False, "code_block", None),
    (
        "stdin_last_python_wins",
        f"No:\n{py('print(0)')}\nYes:\n{py(SUM + 'print(a + b)')}\nOK.",
        True,
        "python_block",
        None,
    ),
    ("float_equal_as_decimal", py(SUM + "print(f'{a / b:.2f}')"), True, "python_block", None),
    ("float_not_equal", py(SUM + "print(a / b + 1e-9)"), False, "python_block", None),
    ("extra_blank_line_between", py("print(1)\nprint()\nprint(2)"), False, "python_block", None),
    ("functional_tuple_vs_list", py(TUPLE), True, "python_block", None),
    ("functional_list", py(SOLUTION.format(hint="", body="return [x] + xs")), True, "python_block", None),
    (
        "functional_module_function",
        py("def prepend(x, xs):\n    return [x] + xs"),
        True,
        "python_block",
        None,
    ),
    ("functional_wrong", py(SOLUTION.format(hint="", body="return xs + [x]")), False, "python_block", None),
    ("functional_prints_fake_pass", py(FAKE_PASS), False, "python_block", None),
    ("functional_exception", py(SOLUTION.format(hint="", body="return xs[10]")), False, "python_block", None),
]
LCB_ITEM_OF = {
    "float_equal_as_decimal": "ratio",
    "float_not_equal": "ratio",
    "extra_blank_line_between": "two_lines",
    **{c[0]: "func" for c in LCB_CASES if c[0].startswith("functional")},
}


@pytest.fixture(scope="module")
def lcb_verdicts() -> dict[str, Verdict]:
    return _grade_all(livecodebench, LCB_ITEMS, LCB_CASES, LCB_ITEM_OF)


@pytest.mark.parametrize("case", LCB_CASES, ids=[c[0] for c in LCB_CASES])
def test_livecodebench_cases(lcb_verdicts: dict[str, Verdict], case: Case) -> None:
    _check(lcb_verdicts, case)


def test_livecodebench_per_test_statuses(lcb_verdicts: dict[str, Verdict]) -> None:
    statuses = lambda name: [t["status"] for t in lcb_verdicts[name].detail["tests"]]  # noqa: E731
    assert statuses("stdin_correct") == ["pass", "pass"]
    assert statuses("stdin_one_test_fails") == ["pass", "wrong_answer"]
    assert lcb_verdicts["stdin_one_test_fails"].detail["n_passed"] == 1
    assert statuses("stdin_exception") == ["error", "error"]
    assert "ZeroDivisionError" in lcb_verdicts["stdin_exception"].detail["tests"][0]["error"]
    assert statuses("stdin_infinite_loop") == ["timeout", "timeout"]
    # [2, 3] + [1] is wrong; [] + ["ab"] happens to be right: the problem still fails.
    assert statuses("functional_wrong") == ["wrong_answer", "pass"]
    assert lcb_verdicts["functional_wrong"].detail["tests"][0]["got"] == "[2, 3, 1]"
    assert statuses("functional_prints_fake_pass") == ["wrong_answer", "wrong_answer"]
    assert json.dumps(lcb_verdicts["stdin_infinite_loop"].detail)  # detail stays JSON-ready


def test_livecodebench_stdout_comparison() -> None:
    match = livecodebench.stdout_matches
    assert match("3  \n\n\n", "3\n")
    assert match("  1 2\n3\n", "1 2\n3")
    assert match("1.50 2\n", "1.5 2.000\n")
    assert not match("1.5000001\n", "1.5\n")
    assert not match("1\n\n2\n", "1\n2\n")
    assert not match("yes\n", "Yes\n")
    assert not match("1 2\n", "1 2 3\n")


# --- Loaders on the offline copies ----------------------------------------------------------------


def test_loaders_counts_and_meta() -> None:
    he = load_humaneval(None, "test", "SYS")
    assert len(he) == 164 and he[0].id == "humaneval/HumanEval/0"
    assert he[0].messages[0] == {"role": "system", "content": "SYS"}
    assert all({"prompt", "test", "entry_point"} <= p.meta.keys() for p in he)
    assert he[0].meta["prompt"] in he[0].messages[1]["content"]

    crux = load_cruxeval(None, "test", None)
    assert len(crux) == 800 and crux[0].id == "cruxeval/sample_0"
    assert crux[0].gold == "[(4, 1), (4, 1), (4, 1), (4, 1), (2, 3), (2, 3)]"
    assert all({"code", "input"} <= p.meta.keys() for p in crux)
    assert "assert f([1, 1, 3, 1, 3, 1]) == ??" in crux[0].messages[0]["content"]

    lcb = load_livecodebench(None, "test", None)
    kinds = [p.meta["testtype"] for p in lcb]
    assert len(lcb) == 279 and kinds.count("functional") == 104 and kinds.count("stdin") == 175
    assert all(p.meta["tests_kind"] == "public" and p.meta["tests"] for p in lcb)
    functional = [p for p in lcb if p.meta["testtype"] == "functional"]
    assert all(
        p.meta["func_name"] and f"def {p.meta['func_name']}(" in p.meta["starter_code"] for p in functional
    )
    assert all("starter code" in p.messages[0]["content"] for p in functional)
    assert all("stdin" in p.messages[0]["content"] for p in lcb if p.meta["testtype"] == "stdin")
    json.dumps([p.meta for p in he + crux + lcb])  # meta round-trips through the data stage's jsonl


def test_missing_fields_name_the_file(tmp_path) -> None:
    he = tmp_path / "he.jsonl"
    he.write_text(
        json.dumps({"task_id": "T/0", "prompt": "def g():\n", "test": "", "entry_point": "g"}) + "\n"
    )
    assert load_humaneval(str(he), "test", None)[0].id == "humaneval/T/0"
    he.write_text(json.dumps({"task_id": "T/0", "prompt": "def g():\n", "test": ""}) + "\n")
    with pytest.raises(DataError, match=r"he\.jsonl:1: record lacks field 'entry_point'"):
        load_humaneval(str(he), "test", None)
    crux = tmp_path / "crux.jsonl"
    crux.write_text(json.dumps({"id": "s0", "code": "def f(x): return x", "output": "1"}) + "\n")
    with pytest.raises(DataError, match=r"crux\.jsonl:1: record lacks field 'input'"):
        load_cruxeval(str(crux), "test", None)
    lcb = tmp_path / "lcb.json"
    lcb.write_text(json.dumps([{"problem": "p", "starter_code": ""}]))
    with pytest.raises(DataError, match=r"lcb\.json\[0\]: record lacks field 'public_test_cases'"):
        load_livecodebench(str(lcb), "test", None)


def test_livecodebench_hub_layout(tmp_path) -> None:
    # The hub's fields: question_content, JSON-string public_test_cases and metadata, a question_id.
    rec = {
        "question_id": "abc123",
        "question_content": "Return x.",
        "starter_code": "class Solution:\n    def ident(self, x: int) -> int:\n        ",
        "public_test_cases": json.dumps([{"input": "1", "output": "1", "testtype": "functional"}]),
        "metadata": json.dumps({"func_name": "ident"}),
        "platform": "leetcode",
    }
    path = tmp_path / "lcb.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    (p,) = load_livecodebench(str(path), "test", None)
    assert p.id == "livecodebench/abc123" and p.meta["func_name"] == "ident"
    assert p.meta["tests"] == [{"input": "1", "output": "1", "testtype": "functional"}]
    assert p.meta["platform"] == "leetcode" and "Return x." in p.messages[0]["content"]
    path.write_text(json.dumps(dict(rec, metadata="{}", starter_code="class Solution:\n    pass\n")) + "\n")
    with pytest.raises(DataError, match=r"lcb\.jsonl:1: functional problem needs one `def`"):
        load_livecodebench(str(path), "test", None)
