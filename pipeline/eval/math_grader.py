"""The answer grader shared by the RL `gold` / `plurality_vote` rewards and the GSM8K / MATH500 evaluation.

Two steps: extract a final answer from a completion (the last `\\boxed{...}`, optionally the last number),
then compare it with the gold answer using math-verify (symbolic / numeric equivalence via sympy).

Thread safety: math-verify bounds parsing and comparison time with `signal.alarm`, which only works in
the main thread. Off the main thread we call it with the timeouts disabled (its documented escape hatch);
the caller then owns the time budget. In the main thread the alarm also cancels any alarm set by someone
else (e.g. pytest-timeout's signal method) for the duration of the call.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from math_verify.errors import TimeoutException

from pipeline.config import BenchmarkConfig
from pipeline.eval.verdict import Verdict
from pipeline.types import Prompt

logger = logging.getLogger(__name__)

# Seconds math-verify may spend parsing one string / comparing one pair (main thread only).
_TIMEOUT_S = 5

# Boxed first (priority 0): every string we hand math-verify is wrapped in \boxed{...} (see `_parse`).
_EXTRACTION_CONFIG = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())

# `\boxed` / `\fbox` not followed by a letter (so `\boxedtext` or `\fboxsep` do not count).
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")

# A number in running text: optional sign (not after a word char or a closing bracket, so the
# `-3` of `x-3` is not negative), thousands groups or plain digits, optional decimals, optional /b.
_SIGN = r"(?:(?<![\w)\]}])-)?"
_NUMBER_RE = re.compile(rf"{_SIGN}(?:(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?(?:/\d+)?|\.\d+)")

# A trailing percent sign, LaTeX-escaped or not.
_PERCENT_RE = re.compile(r"\\?%\s*$")

# Spacing / sizing commands that never change the value of an answer (for the string fast path).
_NOISE_RE = re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\[,;:! ]|\s+")


def _scan_group(text: str, start: int) -> int | None:
    """Index just past the brace group opening at text[start] == "{", or None if it never closes.

    A backslash escapes the next character, so `\\{`, `\\}` (literal braces) and `\\\\` (a LaTeX line
    break, which may precede a real closing brace) do not disturb the depth count.
    """
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _balanced(text: str) -> bool:
    """True when the unescaped braces of `text` pair up (never closing before opening)."""
    depth, i = 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
        i += 1
    return depth == 0


def extract_boxed(text: str) -> str | None:
    """Content of the last top-level `\\boxed{...}` / `\\fbox{...}` (or brace-less `\\boxed 5`) in `text`.

    Nested braces are kept balanced (`\\boxed{\\frac{1}{2}}` -> `\\frac{1}{2}`). Returns None if there is no
    box, if the last box never closes (a completion cut off mid-answer has no final answer, even if an
    earlier box exists), or if it is empty. A box whose whole content is another box is unwrapped.
    """
    if not isinstance(text, str):
        return None
    content: str | None = None
    pos = 0
    while (m := _BOX_RE.search(text, pos)) is not None:
        i = m.end()
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] == "{":
            end = _scan_group(text, i)
            if end is None:
                return None
            content = text[i + 1 : end - 1]
            pos = end  # boxes nested inside this one are part of its content, not later answers
        elif i > m.end():
            # MATH's brace-less form `\boxed 5`: one token, up to whitespace or the closing `$`.
            token = re.match(r"[^\s$]+", text[i:])
            content = token.group(0).rstrip(".,;") if token else None
            pos = i
        else:
            pos = m.end()
    if content is None:
        return None
    content = content.strip()
    # `\boxed{\boxed{3}}`: while the content is exactly one box, take that box's content.
    while (m := _BOX_RE.match(content)) is not None:
        rest = content[m.end() :].lstrip()
        if not rest.startswith("{") or _scan_group(rest, 0) != len(rest):
            break
        content = rest[1:-1].strip()
    return content or None


@dataclass(frozen=True)
class Extraction:
    """A completion's final answer and where it came from."""

    answer: str | None
    source: Literal["boxed", "last_number", "none"]


def _last_number(text: str) -> str | None:
    """The last number in `text` as a plain string: commas dropped, sign, decimals and a/b kept."""
    text = text.replace("{,}", ",")  # LaTeX thousands separator 1{,}234
    matches = _NUMBER_RE.findall(text)
    return matches[-1].replace(",", "") if matches else None


def extract_answer(text: str, fallback: Literal["none", "last_number"] = "none") -> Extraction:
    """The last boxed answer; else, with fallback="last_number", the last number in the text."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return Extraction(boxed, "boxed")
    if fallback == "last_number" and isinstance(text, str):
        number = _last_number(text)
        if number is not None:
            return Extraction(number, "last_number")
    return Extraction(None, "none")


def _normalize(answer: str) -> str:
    """Cheap canonical form for the string fast path (never used as input to math-verify)."""
    s = _NOISE_RE.sub("", answer)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return s.strip("$").rstrip(".")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=1 << 16)
def _parse(answer: str) -> tuple[Any, ...]:
    """math-verify parse of a bare answer string, wrapped in \\boxed{} so it is read as one LaTeX answer.

    Why a wrapper: unwrapped, math-verify's anchors pick a fragment or nothing (`\\dfrac`, `\\text{}`,
    `\\$5`, sets, intervals, `\\sqrt` all failed; `x^2+1` parsed as 1). `$...$` and `\\boxed{}` passed
    the same cases; the box is the highest-priority target here (priority 0), so nothing else in the
    answer can be extracted instead. The wrapper needs balanced braces (see `answers_equivalent`).
    Cached: answers repeat a lot (the same gold for G completions, equal answers in a vote group).
    """
    timeout = _TIMEOUT_S if _in_main_thread() else None
    return tuple(parse(f"\\boxed{{{answer}}}", list(_EXTRACTION_CONFIG), parsing_timeout=timeout))  # type: ignore[arg-type]


@lru_cache(maxsize=1 << 16)
def _verify(pred: str, gold: str) -> bool:
    gold_parsed, pred_parsed = _parse(gold), _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    timeout = _TIMEOUT_S if _in_main_thread() else None
    # verify is not symmetric (gold first): e.g. `x=3` vs `3` is simplified on the prediction side.
    return bool(verify(list(gold_parsed), list(pred_parsed), timeout_seconds=timeout))


def answers_equivalent(pred: str, gold: str) -> bool:
    """True when the bare answer `pred` equals the bare answer `gold` mathematically.

    Identical normalized strings are equal without math-verify. Otherwise math-verify decides, which
    accepts `\\frac{1}{2}` / `0.5` / `1/2`, `\\dfrac`, `\\text{}` wrappers, units (`5 \\text{ cm}`), `\\$5`,
    `10\\%` vs 10, `x=3` vs 3, reordered sets, intervals and tuples. Never raises: garbage is False.
    """
    try:
        if not isinstance(pred, str) or not isinstance(gold, str):
            return False
        pred, gold = pred.strip(), gold.strip()
        norm_pred, norm_gold = _normalize(pred), _normalize(gold)
        if not norm_pred or not norm_gold:
            return False
        if norm_pred == norm_gold:
            return True
        # An unbalanced `}` would close our \boxed{ wrapper early and math-verify would grade a
        # fragment (`1}{2` would equal `1`), so such strings are never equivalent to anything else.
        if not _balanced(pred) or not _balanced(gold):
            return False
        if _verify(pred, gold):
            return True
        # math-verify on the antlr4 4.9.3 runtime (the one hydra-core/omegaconf pin) does not read `\\%`;
        # compare the numbers without it, so `10\\%` ~ `10` as MATH answers are meant.
        bare_pred, bare_gold = _PERCENT_RE.sub("", pred), _PERCENT_RE.sub("", gold)
        if (bare_pred, bare_gold) != (pred, gold) and bare_pred.strip() and bare_gold.strip():
            return _normalize(bare_pred) == _normalize(bare_gold) or _verify(bare_pred, bare_gold)
        return False
    except (Exception, TimeoutException):  # TimeoutException derives from BaseException
        logger.debug("answer comparison failed: %r vs %r", pred, gold, exc_info=True)
        return False


def grade(completion: str, gold: str | None, fallback: Literal["none", "last_number"] = "none") -> Verdict:
    """Extract the completion's final answer and compare it with `gold` (None -> never correct)."""
    extraction = extract_answer(completion, fallback)
    correct = (
        gold is not None and extraction.answer is not None and answers_equivalent(extraction.answer, gold)
    )
    return Verdict(correct=correct, extracted=extraction.answer, source=extraction.source)


def gold_from_solution(solution: str) -> str | None:
    """The gold answer of a MATH solution: the dataset marks it as the solution's last boxed expression."""
    return extract_boxed(solution)


def gold_problem(gold: str) -> Literal["empty", "unbalanced_braces", "unparseable"] | None:
    """Why `answers_equivalent` could never accept any answer for `gold`, or None when it can.

    The data loaders call this on every gold answer, so a gold the grader cannot read is reported at
    load time instead of silently scoring every completion 0. It takes `answers_equivalent`'s own steps:
    an empty or brace-unbalanced gold is rejected before parsing, and a gold math-verify parses to
    nothing (also without a trailing percent sign) could only ever match a string-identical answer.
    """
    gold = gold.strip()  # as `answers_equivalent` strips it (and so the same `_parse` cache entry)
    if not _normalize(gold):
        return "empty"
    if not _balanced(gold):
        return "unbalanced_braces"
    try:
        if _parse(gold):
            return None
        bare = _PERCENT_RE.sub("", gold)
        return None if bare != gold and bare.strip() and _parse(bare) else "unparseable"
    except (Exception, TimeoutException):  # TimeoutException derives from BaseException
        logger.debug("math-verify failed on gold %r", gold, exc_info=True)
        return "unparseable"


def grade_math(prompts: list[Prompt], completions: list[str], bench: BenchmarkConfig) -> list[Verdict]:
    """The answer-matching math benchmarks' grader (arith, GSM8K, MATH500): one verdict per completion
    against its prompt's gold, with the prompt's recorded fallback; the RL `gold` reward's own grade."""
    del bench  # nothing configurable: the grader must stay identical to the training reward's
    return [grade(c, p.gold, p.answer_fallback) for p, c in zip(prompts, completions, strict=True)]
