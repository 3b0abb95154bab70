"""Atomic training checkpoints (model, optimizer, scheduler, RNG states, step, data position) and the run
fingerprint that decides whether a checkpoint may be continued.

Whatever the strategy, a checkpoint holds the whole weights (a Hugging Face model) and the whole
optimizer state (torch's AdamW format), gathered from ZeRO's shards under DeepSpeed, so it resumes on
any process count and any strategy.

A checkpoint is written into a hidden temporary folder and renamed to `step_XXXXXX` only when every
file is on disk, so a folder with that name is always complete; a crash mid-write leaves only a
`.tmp` folder, which is ignored and cleaned up by the next save. A write that fails (disk full) removes
its temporary folder and raises `CheckpointError`; older checkpoints are pruned only after the new one
is in place, so the previous one stays loadable. meta.json lists every file's size and SHA-256:
resuming takes the newest checkpoint whose files match (a damaged one is skipped with a warning, never
loaded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import PreTrainedModel

from pipeline.atomic import fsync_dir, fsync_tree
from pipeline.config import TrainConfig, TrainerConfig, affects_trajectory, to_dict
from pipeline.faults import fault_point
from pipeline.modeling.models import policy_state
from pipeline.parallel.distributed import Distributed
from pipeline.types import Prompt

STEP_RE = re.compile(r"^step_(\d{6,})$")
STATE_FILE = "trainer_state.pt"
META_FILE = "meta.json"
logger = logging.getLogger(__name__)


class CheckpointError(OSError):
    """A checkpoint could not be written (e.g. disk full); the message names the one that is intact."""


def save_checkpoint(
    dist: Distributed,
    root: Path,
    step: int,
    scorer: torch.nn.Module,
    model: PreTrainedModel,
    optimizer: Any,
    scheduler: Any,
    extra: dict[str, Any],
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `root/step_{step}` (step = number of completed training steps).

    Every process calls it (gathering ZeRO's shards is a collective); the main process writes the
    folder and renames it into place last.
    """
    final = root / f"step_{step:06d}"
    tmp = root / f".step_{step:06d}.tmp"  # the same name on every process; one run per folder
    if dist.is_main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".step_*.tmp*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    weights = dist.full_state_dict(scorer)  # collective under ZeRO-3; None where weights are whole
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer_state = dist.optimizer_state(optimizer, params)  # collective under DeepSpeed
    dist.barrier()
    if dist.is_main:
        try:
            _write(tmp, step, model, weights, optimizer_state, scheduler, extra)
        except Exception as e:  # OSError, and the writers' own wrappers of it (safetensors, torch.save)
            shutil.rmtree(tmp, ignore_errors=True)  # frees the space the half checkpoint took
            previous = latest_checkpoint(root)
            raise CheckpointError(
                f"could not write checkpoint {final} ({e}); the previous checkpoint "
                f"{previous or '(none)'} is intact and a rerun resumes from it once there is space"
            ) from e
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)  # the rename itself survives a power cut
        for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


def _write(
    tmp: Path,
    step: int,
    model: PreTrainedModel,
    weights: dict[str, torch.Tensor] | None,
    optimizer_state: dict[str, Any],
    scheduler: Any,
    extra: dict[str, Any],
) -> None:
    """Every file of a checkpoint into `tmp`, synced, with the manifest last."""
    model.save_pretrained(tmp, safe_serialization=True, state_dict=policy_state(weights, model))
    fault_point("checkpoint_write", step)  # the weights are on disk, the optimizer state is not
    state = {
        "step": step,
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
        **extra,
    }
    torch.save(state, tmp / STATE_FILE)
    # The small JSON-able part again, readable without loading the optimizer state, and the manifest.
    meta = {"step": step, **extra, "files": _manifest(tmp)}
    (tmp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    fsync_tree(tmp)  # every file and the folder, before the rename makes it a checkpoint


def _manifest(folder: Path) -> dict[str, list[Any]]:
    """{relative file name: [size, sha256]} of every file in the folder."""
    out: dict[str, list[Any]] = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != META_FILE:
            with open(f, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            out[f.relative_to(folder).as_posix()] = [f.stat().st_size, digest]
    return out


def verify_checkpoint(path: Path) -> str | None:
    """None if every file of the checkpoint matches its manifest, else what is wrong.

    Checkpoints written before manifests existed have none and pass.
    """
    try:
        listed = json.loads((path / META_FILE).read_text(encoding="utf-8")).get("files")
    except (OSError, json.JSONDecodeError) as e:
        return f"unreadable {META_FILE} ({e})"
    if listed is None:
        return None
    actual = _manifest(path)
    for name, (size, digest) in listed.items():
        if name not in actual:
            return f"{name} is missing"
        if actual[name][0] != size:
            return f"{name} has {actual[name][0]} bytes, the manifest says {size}"
        if actual[name][1] != digest:
            return f"{name} does not match its SHA-256"
    return None


def latest_valid_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint whose files match their manifest; damaged ones are skipped, with a warning."""
    for path in reversed(list_checkpoints(root)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        logger.warning("%s is damaged (%s): not loaded; trying an older checkpoint", path, problem)
    return None


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under root, oldest first."""
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := STEP_RE.match(p.name)) and (p / STATE_FILE).is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def load_checkpoint(
    dist: Distributed, path: Path, model: PreTrainedModel, optimizer: Any, scheduler: Any
) -> dict[str, Any]:
    """Restore model/optimizer/scheduler/RNG in place on every process; returns the saved state."""
    weights = _read_weights(path)
    if not dist.load_weights(model, weights):
        _check_and_load(path, model, weights)
    state = torch.load(path / STATE_FILE, weights_only=False)
    params = [p for p in model.parameters() if p.requires_grad]
    dist.load_optimizer_state(optimizer, params, state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        weights.update(load_file(f))
    if not weights:
        raise FileNotFoundError(f"{path}: checkpoint has no *.safetensors weights")
    return weights


def _check_and_load(path: Path, model: PreTrainedModel, weights: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    tied |= {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise RuntimeError(
            f"{path}: weights do not match the model (missing={missing}, unexpected={unexpected})"
        )


def resume_point(dist: Distributed, root: Path, fingerprint: str) -> Path | None:
    """The checkpoint to continue: the newest intact one, if it was written by this very run (same
    config and data); checkpoints of another run are deleted, never continued."""
    ckpt = latest_valid_checkpoint(root)
    stale = ckpt is not None and read_fingerprint(ckpt) != fingerprint
    dist.barrier()  # every process has read the fingerprint before the folder may go
    if not stale:
        return ckpt
    logger.warning("%s was written with a different config or data: starting from step 0", ckpt)
    if dist.is_main:
        shutil.rmtree(root)
    return None


def read_fingerprint(path: Path) -> str | None:
    """The run fingerprint a checkpoint was written with (None for checkpoints without one)."""
    meta = path / META_FILE
    return json.loads(meta.read_text(encoding="utf-8")).get("fingerprint") if meta.is_file() else None


def run_fingerprint(cfg: TrainConfig, prompts: list[Prompt]) -> str:
    """Hash of everything that determines the training trajectory: config (less bookkeeping) and data."""
    tree = to_dict(cfg)
    tree.pop("tracking")
    for f in dataclasses.fields(TrainerConfig):
        if not affects_trajectory(f):  # bookkeeping and placement: a checkpoint stays valid across them
            tree["trainer"].pop(f.name)
    tree["prompts"] = [[p.id, p.messages, p.gold] for p in prompts]
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]
