"""Screening a dataset's records as a loader reads them: invalid ones raise, or are skipped and counted.

A record whose gold answer the grader can never match (none in the record, empty, unbalanced braces,
or nothing math-verify can parse) would give every completion reward 0 and every evaluation a wrong
answer, silently. By default (`on_invalid: error`) the first one stops the load with a DataError naming
file:line, the record id and the gold text; with `on_invalid: skip` each is dropped, one warning lists
the count and the first locations, and `stats()` goes to data/stats.json. A record that is not valid
JSON or lacks a required field is a broken file, not a bad item: that is always an error.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.config import ConfigError
from pipeline.data.jsonl import DataError
from pipeline.types import Prompt

logger = logging.getLogger(__name__)

OnInvalid = Literal["error", "skip"]

# Reason code (data/stats.json key) -> what it means, for the messages.
REASONS = {
    "no_gold": "has no gold answer",
    "empty": "is empty",
    "unbalanced_braces": "has unbalanced braces, which the grader never compares",
    "unparseable": "cannot be parsed by math-verify, so no completion can ever match it",
}
# Skipped locations named in the warning (the count covers all of them).
_SHOWN = 5


@dataclass(frozen=True)
class Rejection:
    where: str
    record_id: str
    reason: str


class RecordScreen:
    """One dataset's screen; `name` is its config section ("data", "benchmarks.gsm8k") for messages."""

    def __init__(self, on_invalid: OnInvalid = "error", name: str = "data") -> None:
        if on_invalid not in ("error", "skip"):
            raise ValueError(f"{name}.on_invalid must be 'error' or 'skip', got {on_invalid!r}")
        self.on_invalid = on_invalid
        self.name = name
        self.rejected: list[Rejection] = []
        self.kept = 0
        self._warned = False  # `finish` may run twice (loader, then load_benchmark): warn once

    def reject(self, where: str, record_id: str, reason: str, detail: str) -> None:
        """Raise (error) or record (skip) one invalid record; `detail` starts the message after file:line."""
        if self.on_invalid == "error":
            raise DataError(
                f"{where}: {detail} (record {record_id!r}; `{self.name}.on_invalid: skip` skips such records)"
            )
        self.rejected.append(Rejection(where, record_id, reason))

    def gold(
        self, where: str, record_id: str, gold: str | None, absent: str = "it has no gold answer"
    ) -> bool:
        """True when the grader can match `gold`; else the record is rejected (raise, or skip: False).
        `absent` says what the record lacks when no gold could be read from it (gold None)."""
        if gold is None:
            self.reject(where, record_id, "no_gold", absent)
            return False
        # Imported here: screens of code and multiple-choice benchmarks never load math-verify.
        from pipeline.eval.math_grader import gold_problem

        reason = gold_problem(gold)
        if reason is None:
            return True
        self.reject(where, record_id, reason, f"gold answer {gold!r} {REASONS[reason]}")
        return False

    def finish(self, source: str, prompts: list[Prompt]) -> list[Prompt]:
        """The kept prompts; logs the skipped ones (once), and raises when nothing usable is left."""
        self.kept = len(prompts)
        if self.rejected and not self._warned:
            self._warned = True
            shown = ", ".join(f"{r.where} ({r.reason})" for r in self.rejected[:_SHOWN])
            more = f" and {len(self.rejected) - _SHOWN} more" if len(self.rejected) > _SHOWN else ""
            logger.warning(
                "%s: skipped %d invalid record(s) of %s (on_invalid: skip; counted in data/stats.json): %s%s",
                self.name,
                len(self.rejected),
                source,
                shown,
                more,
            )
        if not prompts:
            skipped = f"{len(self.rejected)} skipped: {self.by_reason()}"
            raise DataError(f"{source}: no usable records for {self.name} ({skipped})")
        return prompts

    def by_reason(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejected))

    def stats(self) -> dict[str, Any]:
        """Numbers only (what `dvc metrics show` tabulates); the locations are in the warning."""
        return {"kept": self.kept, "skipped": len(self.rejected), "skipped_by_reason": self.by_reason()}


def check_limit(limit: int | None, key: str) -> None:
    """`limit: 0` (or below) would write an empty dataset, which training or evaluation only finds later."""
    if limit is not None and limit < 1:
        raise ConfigError(f"{key}: must be a positive count or null (all), got {limit}")


def screen_generated(prompts: list[Prompt], screen: RecordScreen, source: str) -> list[Prompt]:
    """Screen the golds of generated prompts (arith): a bad one is a generator bug, caught before training."""
    kept = [p for i, p in enumerate(prompts) if screen.gold(f"{source}[{i}]", p.id, p.gold)]
    return screen.finish(source, kept)
