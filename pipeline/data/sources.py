"""Where a dataset's records come from: an explicit file/folder, $INTUITOR_DATA_DIR, or the hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.data.jsonl import DataError, read_records

DATA_DIR_ENV = "INTUITOR_DATA_DIR"


def load_split(
    name: str,
    path: str | None,
    split: str,
    hub_id: str,
    hub_config: str | None = None,
    local_file: str | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Records of `split` and a description of where they came from.

    Resolution order: `path` (a file, or a folder holding `<split>.jsonl`), then
    `$INTUITOR_DATA_DIR/<name>/<split>.jsonl` (or `$INTUITOR_DATA_DIR/<local_file>` for datasets whose
    offline copy has another layout), then the Hugging Face hub (`datasets`, imported lazily).
    """
    candidates: list[Path] = []
    if path is not None and not _looks_like_hub_id(path):
        p = Path(path)
        candidates.append(p if p.suffix in (".jsonl", ".json", ".gz") else p / f"{split}.jsonl")
    elif path is None and os.environ.get(DATA_DIR_ENV):
        candidates.append(Path(os.environ[DATA_DIR_ENV]) / (local_file or f"{name}/{split}.jsonl"))
    for c in candidates:
        if c.is_file():
            return read_records(c), str(c)
        raise DataError(f"{c}: no such data file (dataset {name!r}, split {split!r})")
    return _from_hub(path or hub_id, hub_config, split), f"hub:{path or hub_id}"


def _looks_like_hub_id(path: str) -> bool:
    return not Path(path).exists() and path.count("/") == 1 and not path.startswith((".", "/"))


def _from_hub(hub_id: str, config: str | None, split: str) -> list[dict[str, Any]]:
    try:
        import datasets  # lazy: the CPU path and tests read local files
    except ImportError as e:
        raise DataError(
            f"loading {hub_id!r} from the hub needs `pip install datasets`; or set {DATA_DIR_ENV} "
            "to a folder of local copies (see shared/data/README.md)"
        ) from e
    ds = datasets.load_dataset(hub_id, config, split=split)
    # Rows are positions, not lines: `_index` makes errors read `hub:<id>[i]`.
    return [dict(r, _index=i) for i, r in enumerate(ds)]
