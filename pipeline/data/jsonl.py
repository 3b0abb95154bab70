"""Reading record files (jsonl, a json array, or .gz of either) with errors that name file and line."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file is missing, malformed or lacks a field; the message names the file and line."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a .jsonl / .json (array) file, optionally gzipped.

    Each record gets where it came from: `_line` (1-based line of a .jsonl) or `_index` (0-based position
    in a .json array), which `where` turns into `file:line` / `file[index]` for error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    opener = gzip.open if path.suffix == ".gz" else open
    stem_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    records: list[dict[str, Any]] = []
    lineno = 0
    # Bytes, decoded line by line: a text-mode reader decodes ahead in chunks, so its UnicodeDecodeError
    # would not say which line holds the bad bytes.
    try:
        with opener(path, "rb") as f:
            if stem_suffix == ".json":
                records = _json_array(path, _decode(f.read(), str(path)))
            else:
                for lineno, raw in enumerate(f, start=1):
                    line = _decode(raw, f"{path}:{lineno}")
                    if line.strip():
                        records.append(_json_line(path, lineno, line))
    # A truncated or corrupt .gz: name the file and how far it was read, not a bare zlib traceback.
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        after = f" after line {lineno}" if lineno else ""
        raise DataError(f"{path}: corrupt or truncated compressed file{after} ({e})") from e
    if not records:
        raise DataError(f"{path}: the file holds no records")
    return records


def _decode(raw: bytes, at: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{at}: not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r})") from e


def _json_line(path: Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(rec, dict):
        raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
    rec["_line"] = lineno
    return rec


def _json_array(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataError(f"{path}[{i}]: expected a JSON object, got {type(rec).__name__}")
        rec["_index"] = i
    return data


def where(rec: dict[str, Any], source: str) -> str:
    """`source:line` for a jsonl record, `source[index]` for a json-array or hub record, else `source`."""
    if "_line" in rec:
        return f"{source}:{rec['_line']}"
    if "_index" in rec:
        return f"{source}[{rec['_index']}]"
    return source


def require(rec: dict[str, Any], field: str, source: str, kind: type | None = None) -> Any:
    """rec[field], or a DataError naming the file:line and the fields that are there.

    With `kind`, the value must also be an instance of it (a number where text is expected would
    otherwise surface much later, e.g. in the tokenizer, without a location).
    """
    if field not in rec or rec[field] is None:
        present = sorted(k for k in rec if not k.startswith("_"))
        raise DataError(f"{where(rec, source)}: record lacks field {field!r} (has {present})")
    value = rec[field]
    if kind is not None and not isinstance(value, kind):
        raise DataError(
            f"{where(rec, source)}: field {field!r} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value
