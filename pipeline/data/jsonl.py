"""Reading record files (jsonl, a json array, or .gz of either) with errors that name file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file is missing, malformed or lacks a field; the message names the file and line."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a .jsonl / .json (array) file, optionally gzipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    opener = gzip.open if path.suffix == ".gz" else open
    stem_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    with opener(path, "rt", encoding="utf-8") as f:
        if stem_suffix == ".json":
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON array of records")
            return data
        records = []
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from e
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            rec["_line"] = lineno
            records.append(rec)
    if not records:
        raise DataError(f"{path}: the file holds no records")
    return records


def require(rec: dict[str, Any], field: str, source: str) -> Any:
    """rec[field], or a DataError naming the file:line and the fields that are there."""
    if field not in rec or rec[field] is None:
        where = f"{source}:{rec['_line']}" if "_line" in rec else source
        present = sorted(k for k in rec if not k.startswith("_"))
        raise DataError(f"{where}: record lacks field {field!r} (has {present})")
    return rec[field]
