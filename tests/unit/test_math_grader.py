"""Answer extraction and equivalence (pipeline.eval.math_grader), table driven."""

from __future__ import annotations

import threading

import pytest

from pipeline.eval.math_grader import (
    Extraction,
    answers_equivalent,
    extract_answer,
    extract_boxed,
    gold_from_solution,
    grade,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the answer is \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # nested braces
        (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),  # deeper nesting
        (r"first \boxed{1}, then \boxed{2}", "2"),  # last box wins
        (r"\fbox{7}", "7"),
        (r"$\boxed 5$.", "5"),  # MATH's brace-less form
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces do not count
        (r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
        (r"\boxed{\boxed{3}}", "3"),  # a box that is only a box is unwrapped
        (r"\boxed{3", None),  # unbalanced
        (r"\boxed{2} and then \boxed{3", None),  # the last box is cut off: no final answer
        (r"\boxed{}", None),
        ("no box here, 12", None),
        (r"\boxedtext{3}", None),  # not the \boxed command
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "fallback", "expected"),
    [
        (r"so \boxed{3} and 7", "last_number", Extraction("3", "boxed")),  # a box beats the fallback
        ("no box, 12", "none", Extraction(None, "none")),
        ("The total is 1,234 dollars.", "last_number", Extraction("1234", "last_number")),
        ("The change is -5.", "last_number", Extraction("-5", "last_number")),
        ("x-3 = 4 so x is 7", "last_number", Extraction("7", "last_number")),  # `x-3`: minus, not sign
        ("It costs 2.50 now", "last_number", Extraction("2.50", "last_number")),
        ("the ratio is 3/4.", "last_number", Extraction("3/4", "last_number")),
        ("1,234,567 grains", "last_number", Extraction("1234567", "last_number")),
        ("no digits at all", "last_number", Extraction(None, "none")),
    ],
)
def test_extract_answer(text: str, fallback: str, expected: Extraction) -> None:
    assert extract_answer(text, fallback) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        (r"\frac{1}{2}", "0.5", True),
        ("0.5", r"\frac{1}{2}", True),
        ("1/2", r"\frac{1}{2}", True),
        (r"\dfrac{1}{2}", r"\frac{1}{2}", True),
        (r"\tfrac12", "0.5", True),
        (r"\text{5}", "5", True),
        (r"5 \text{ cm}", "5", True),
        ("5cm", "5", True),
        (r"\$5", "5", True),
        (r"10\%", "10", True),
        ("x=3", "3", True),
        ("x = 3", "3", True),
        ("1,000", "1000", True),
        ("2", "2.0", True),
        (r"[1, 2)", r"[1,2)", True),
        (r"(-\infty, 3]", r"(-\infty,3]", True),
        (r"\{2,1\}", r"\{1,2\}", True),
        ("(3, -1)", "(3,-1)", True),
        (r"\sqrt{72}", r"6\sqrt{2}", True),
        ("(x+2)(x+5)", "x^2+7x+10", True),
        (r"\text{(C)}", "C", True),
        (r"\text{Evelyn}", r"\text{Evelyn}", True),  # fast path: identical strings
        # Wrong answers must be rejected.
        ("4", "5", False),
        ("-3", "3", False),
        ("0.5", r"\frac{1}{3}", False),
        ("1/3", "0.333", False),
        (r"(1, 2]", r"[1,2)", False),
        ("(2,1)", "(1,2)", False),
        ("2", "2, -2", False),
        ("y=3", "x=3", False),
        ("2x", "2", False),
        (r"\text{(D)}", r"\text{(C)}", False),
        ("50", "0.5", False),
        # Garbage: False, never an exception.
        (r"\frac{1}{2", "0.5", False),
        ("1}{2", "1", False),  # would otherwise escape the \boxed{} wrapper and grade as 1
        ("}{", "1", False),
        ("\\", "1", False),
        (r"\sqrt", "1", False),
        ("", "1", False),
        ("5", "", False),
        (r"\begin{pmatrix", r"\end{", False),
    ],
)
def test_answers_equivalent(pred: str, gold: str, expected: bool) -> None:
    assert answers_equivalent(pred, gold) is expected


def test_answers_equivalent_non_strings() -> None:
    assert answers_equivalent(None, "1") is False  # type: ignore[arg-type]
    assert answers_equivalent("1", 1) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("completion", "gold", "fallback", "correct", "extracted", "source"),
    [
        (r"Thus $\boxed{\dfrac{1}{2}}$.", "0.5", "none", True, r"\dfrac{1}{2}", "boxed"),
        (r"\boxed{3} wait no \boxed{4}", "3", "none", False, "4", "boxed"),
        (r"\boxed{10\%}", "10", "none", True, r"10\%", "boxed"),
        ("The answer is 1,234.", "1234", "none", False, None, "none"),  # the RL reward needs a box
        ("The answer is 1,234.", "1234", "last_number", True, "1234", "last_number"),
        ("So she has -7 apples", "-7", "last_number", True, "-7", "last_number"),
        (r"\boxed{5}", None, "none", False, "5", "boxed"),  # no gold: never correct
        (r"\boxed{\frac{", "1", "none", False, None, "none"),
    ],
)
def test_grade(
    completion: str, gold: str | None, fallback: str, correct: bool, extracted: str | None, source: str
) -> None:
    verdict = grade(completion, gold, fallback)  # type: ignore[arg-type]
    assert (verdict.correct, verdict.extracted, verdict.source) == (correct, extracted, source)


@pytest.mark.parametrize(
    ("solution", "expected"),
    [
        (r"So $x = \boxed{\frac{3}{4}}$.", r"\frac{3}{4}"),
        (r"We get $\boxed{(1, 2)}$ and so the answer is $\boxed{2}$.", "2"),
        (r"The answer is $\boxed 7$.", "7"),
        ("No boxed answer.", None),
    ],
)
def test_gold_from_solution(solution: str, expected: str | None) -> None:
    assert gold_from_solution(solution) == expected


def test_grading_off_the_main_thread() -> None:
    """math-verify's signal.alarm timeouts fail off the main thread; the grader must still work there."""
    results: dict[str, object] = {}

    def work() -> None:
        try:
            # Strings not graded elsewhere in this file, so the lru caches cannot answer for the thread.
            results["right"] = grade(r"\boxed{\frac{3}{9}}", "0.333333333").correct
            results["wrong"] = grade(r"\boxed{\frac{4}{9}}", "0.333333333").correct
            results["sets"] = answers_equivalent(r"\{7, 8\}", r"\{8,7\}")
        except BaseException as e:  # surfaced by the assertion below
            results["error"] = e

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert results == {"right": True, "wrong": False, "sets": True}
