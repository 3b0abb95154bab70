"""The resume file of an evaluation: its completed chunks of samples, appended as each one finishes.

A killed evaluation (OOM killer, preemption, kill -9) keeps what it generated: the runner appends each
generated and graded chunk as one jsonl line, flushed and fsynced, and the next run takes those chunks
from here instead of generating them again. Layout of `samples.partial.jsonl`:

    {"partial_samples": 1, "fingerprint": "<sha256>", "benchmark": ..., "n_items": ...}   header
    {"chunk": 0, "ids": [...], "records": [...]}     one line per completed chunk (the resume index)

The fingerprint covers everything that decides the samples: the benchmark config, the prompts, the
model (weights digest, dtype, device), the torch / transformers versions and the evaluation code. A file with
another fingerprint is discarded, never mixed in. A kill in the middle of an append leaves a last line
without its newline: it is ignored and cut off before the next append.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers

from pipeline.config import BenchmarkConfig, to_dict
from pipeline.types import Prompt

logger = logging.getLogger(__name__)

FORMAT = 1
# What of a model folder decides its completions: the weights, the architecture and generation
# config, and the tokenizer (its chat template included).
MODEL_FILES = (
    "*.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer*.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
PIPELINE_DIR = Path(__file__).resolve().parents[1]
# The code that decides the samples (under pipeline/): the evaluate stage's code dependencies in
# dvc.yaml (the model's loading, prompt rendering, attention, precision and certainty: modeling/).
SOURCES = ("eval", "tasks", "data", "registry.py", "rollout", "modeling", "rl/batch.py", "rl/scoring.py")


def _file_sha256(path: Path) -> bytes:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def weights_digest(folder: Path) -> str:
    """sha256 over a model folder's weights, config and tokenizer files (names and contents)."""
    files = sorted({p for pattern in MODEL_FILES for p in Path(folder).glob(pattern) if p.is_file()})
    if not any(p.suffix == ".safetensors" for p in files):
        raise FileNotFoundError(f"{folder}: no *.safetensors weights to fingerprint")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + _file_sha256(p))
    return h.hexdigest()


def source_digest(root: Path = PIPELINE_DIR, parts: tuple[str, ...] = SOURCES) -> str:
    """sha256 over the Python sources under `root` that decide the samples: a partial file written by
    other code (a fixed grader, another prompt rendering) is not mixed into this run's results."""
    files = sorted(
        p for part in parts for p in ([root / part] if part.endswith(".py") else (root / part).rglob("*.py"))
    )
    h = hashlib.sha256()
    for p in files:
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + _file_sha256(p))
    return h.hexdigest()


def fingerprint(bench: BenchmarkConfig, prompts: list[Prompt], model: Mapping[str, Any]) -> str:
    """Digest of everything that decides an evaluation's samples; `model` describes the model (its
    weights digest, dtype, device)."""
    material = {
        "format": FORMAT,
        "benchmark": to_dict(bench),
        # The whole prompt, not only id and messages: gold, fallback and meta decide the grading.
        "prompts": [dataclasses.asdict(p) for p in prompts],
        "model": dict(model),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "source": source_digest(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class PartialSamples:
    """An open resume file: `chunks` (index -> records) it already holds, and `append`."""

    def __init__(self, path: Path, chunks: dict[int, list[dict[str, Any]]]) -> None:
        self.path = path
        self.chunks = chunks
        # Unbuffered: each append is its own write call, never a buffer flushed half-way by a kill.
        self._file = path.open("ab", buffering=0)

    @classmethod
    def open(cls, path: Path, fingerprint: str, header: Mapping[str, Any]) -> PartialSamples:
        """Read the chunks a file with this fingerprint holds (cutting a torn last line), or start a
        new file with this header when there is none or it belongs to another evaluation."""
        chunks = _read(path, fingerprint)
        if chunks is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            head = {"partial_samples": FORMAT, "fingerprint": fingerprint, **header}
            with path.open("wb") as f:
                f.write((json.dumps(head) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
            chunks = {}
        return cls(path, chunks)

    def append(self, chunk: int, ids: list[str], records: list[dict[str, Any]]) -> None:
        """Append one completed chunk as a single line, durable on return."""
        line = (json.dumps({"chunk": chunk, "ids": ids, "records": records}) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[self._file.write(view) :]
        os.fsync(self._file.fileno())
        self.chunks[chunk] = records

    def close(self) -> None:
        self._file.close()


def _read(path: Path, fingerprint: str) -> dict[int, list[dict[str, Any]]] | None:
    """The chunks of a matching file (its torn tail truncated away); None if there is nothing to
    resume from (no file, another fingerprint, a corrupt line)."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    # Every complete line ends with its newline (json.dumps escapes newlines inside strings), so
    # whatever follows the last newline is an append the kill cut short.
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    try:
        head = json.loads(lines[0]) if lines else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("fingerprint") != fingerprint:  # FORMAT is hashed in
        logger.warning(
            "%s: not this evaluation's (another model, config, prompts or code); discarded, starting over",
            path,
        )
        return None
    chunks = {}
    for n, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
            chunks[int(row["chunk"])] = list(row["records"])
        except (ValueError, KeyError, TypeError):
            logger.warning("%s: line %d is corrupt; discarded, starting over", path, n)
            return None
    if end < len(data):
        logger.warning("%s: ignoring a torn last line (%d bytes)", path, len(data) - end)
        os.truncate(path, end)
    return chunks
