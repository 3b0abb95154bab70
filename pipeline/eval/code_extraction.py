"""Reading the program out of a code-benchmark completion (HumanEval, LiveCodeBench).

Order: the last closed ```python block, else the last closed fenced block in any other (or no) language,
else the raw completion. The fallbacks are recorded, not hidden: a ```cpp block is still taken (and then
fails to run as Python), so a model that answers in the wrong language scores 0 and the record says why.
Unclosed fences (a completion cut off mid-block) do not count as blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# A fence line: optional indentation, three or more backticks, then an info string (the language).
_FENCE_RE = re.compile(r"^[ \t]*(`{3,})[ \t]*([^\s`]*)[^`\n]*$")

# Info strings that mean Python (lower-cased).
_PYTHON_TAGS = frozenset({"python", "python3", "py", "py3"})


@dataclass(frozen=True)
class CodeExtraction:
    """The program read from a completion and where it came from."""

    code: str
    # python_block: last ```python block; code_block: last fenced block of another/no language;
    # raw: no closed fenced block, the whole completion; none: the completion is empty.
    source: Literal["python_block", "code_block", "raw", "none"]
    # The block's info string ("python", "cpp", "" for a bare fence); None for raw / none.
    language: str | None = None


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every closed fenced block in order; the language is lower-cased.

    A block closes at the next fence line of at least as many backticks with no info string
    (CommonMark's rule), so a ```python line inside a block does not end it.
    """
    blocks: list[tuple[str, str]] = []
    open_fence: tuple[int, str, int] | None = None  # (backtick count, language, first body line)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = _FENCE_RE.match(line)
        if m is None:
            continue
        ticks, lang = len(m.group(1)), m.group(2).lower()
        if open_fence is None:
            open_fence = (ticks, lang, i + 1)
        elif ticks >= open_fence[0] and line.strip().strip("`") == "":
            blocks.append((open_fence[1], "\n".join(lines[open_fence[2] : i])))
            open_fence = None
    return blocks


def extract_code(text: str) -> CodeExtraction:
    """The program to run for a completion (see the module docstring for the order)."""
    if not text or not text.strip():
        return CodeExtraction("", "none")
    blocks = fenced_blocks(text)
    python = [body for lang, body in blocks if lang in _PYTHON_TAGS]
    if python:
        return CodeExtraction(python[-1], "python_block", "python")
    if blocks:
        lang, body = blocks[-1]
        return CodeExtraction(body, "code_block", lang)
    return CodeExtraction(text, "raw")
