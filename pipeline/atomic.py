"""Atomic file writes: a temporary sibling, then a rename, so no reader (or DVC) ever sees half a file.

The temporary file is synced before the rename (a power cut cannot leave the new name on empty data)
and removed if writing fails (a full disk must not also fill up with half files).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """`with atomic_path(p) as tmp:` write `tmp` (any writer that takes a file name); on success it
    is synced and renamed to `p`, on an exception removed, leaving `p` as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keeps the suffix: some writers (matplotlib's savefig) pick the format from it.
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_tree(folder: Path) -> None:
    """Flush every file under `folder`, and the folder itself, to disk (before renaming it into place)."""
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it survives a power cut)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")
