"""The real pipeline, killed: `dvc repro train@intuitor` of the smoke experiment SIGKILLed at three
points in a row (mid-update, mid-checkpoint write, mid-rollout), then rerun, ends bit-identical to an
uninterrupted `dvc repro` of the stage (CPU).

    pytest tests/reliability/test_pipeline_kill.py
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from scratch_repo import run_checked, scratch_pipeline

from pipeline.rl.checkpoint import latest_valid_checkpoint

pytestmark = pytest.mark.integration
STAGE = ["dvc", "repro", "train@intuitor"]


def _outputs(path: Path) -> tuple[dict[str, torch.Tensor], list[list[str]], dict]:
    weights = load_file(str(path / "models/intuitor/model.safetensors"))
    with open(path / "results/train/intuitor/steps.csv", encoding="utf-8") as f:
        steps = list(csv.reader(f))
    summary = json.loads((path / "results/train/intuitor/metrics.json").read_text(encoding="utf-8"))
    last = {k: v for k, v in summary["last_step"].items() if not k.startswith(("time/", "throughput/"))}
    return weights, steps, {"steps": summary["steps"], "last_step": last}


def test_killed_dvc_repro_resumes_bit_identically(tmp_path) -> None:
    path, env = scratch_pipeline(tmp_path / "repo")
    ckpts = path / "runs/intuitor/checkpoints"
    # (fault, the newest intact checkpoint it leaves): each rerun resumes from what the last one left
    for fault, left in [("update@0", None), ("checkpoint_write@1", None), ("rollout@1", "step_000001")]:
        done = subprocess.run(
            STAGE, cwd=path, env={**env, "INTUITOR_FAULT": fault}, capture_output=True, text=True, timeout=600
        )
        assert done.returncode != 0, f"{fault}: the stage was not killed\n{done.stdout[-2000:]}"
        assert not (path / "models/intuitor").exists()
        newest = latest_valid_checkpoint(ckpts)
        assert (newest.name if newest else None) == left, fault
    assert not list(ckpts.glob(".step_*.tmp"))  # the kill mid-write's leftover was cleaned up
    out = run_checked(STAGE, path, env)
    assert "Running stage 'train@intuitor'" in out
    assert json.loads((path / "results/train/intuitor/metrics.json").read_text())["resumed_from_step"] == 1
    killed = _outputs(path)

    shutil.rmtree(path / "runs/intuitor")  # nothing to resume from: the uninterrupted run
    run_checked([*STAGE, "--force", "--single-item"], path, env)
    clean = _outputs(path)
    assert killed[0].keys() == clean[0].keys()
    for k in clean[0]:
        assert torch.equal(killed[0][k], clean[0][k]), k
    assert killed[1] == clean[1] and len(clean[1]) == 3  # header + 2 steps
    assert json.dumps(killed[2]) == json.dumps(clean[2])
