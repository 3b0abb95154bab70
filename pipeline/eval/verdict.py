"""The outcome of grading one completion: the noun every benchmark grader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """Whether one completion is correct, the answer read from it, and how it was read."""

    correct: bool
    # The final answer / program / letter extracted from the completion (None: nothing found).
    extracted: str | None
    # How it was extracted (e.g. "boxed", "last_number", "python_block", "answer_is", "none").
    source: str
    # Grader-specific details saved with the sample (e.g. per-test statuses of a program).
    detail: dict[str, Any] = field(default_factory=dict)
