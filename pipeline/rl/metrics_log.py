"""metrics.jsonl of a training run: one line per completed step, the run's own record of its curves.

It is written before the step's checkpoint, so after a crash it may hold steps the checkpoint does not:
on resume only the steps before the checkpoint are kept (they are recomputed identically). A crash
mid-append leaves a torn last line, which is dropped; a bad line anywhere else is corruption and an
error naming the file and line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pipeline.atomic import write_text_atomic
from pipeline.data.jsonl import DataError

logger = logging.getLogger(__name__)


def read_metrics_log(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a torn (unparseable) last line is dropped with a warning."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if lineno == len(lines):
                logger.warning("%s:%d: torn last line (a crash mid-write), dropped", path, lineno)
                break
            raise DataError(f"{path}:{lineno}: invalid JSON in the metrics log ({e.msg})") from e
    return records


def restore_metrics_log(path: Path, start: int, write: bool) -> list[dict[str, Any]]:
    """Keep the records of steps < start (and rewrite the file so, if `write`); returns them."""
    kept = [r for r in read_metrics_log(path) if r["step"] < start]
    if write:
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


def append_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """One line, flushed to disk before the step's checkpoint is written."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())
