"""Training survives kill -9, damaged checkpoints, a torn metrics log and a full disk, and ends exactly
where an uninterrupted run ends (CPU: bit-identical weights and metrics).

Killed runs are real processes (tests/integration/ddp_worker.py runs `run_training` as the train stage
does) killed with SIGKILL, either at a named fault point (INTUITOR_FAULT, pipeline/faults.py) or from
outside at a random moment; the disk fills up for real (RLIMIT_FSIZE: writes past the limit fail with
EFBIG, as they would with ENOSPC).
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from smoke_config import train_config

from pipeline.config import (
    TrainConfig,
    to_dict,
)
from pipeline.rl.checkpoint import latest_valid_checkpoint, list_checkpoints, verify_checkpoint
from pipeline.steps import run_training

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "integration" / "ddp_worker.py"
STEPS = 4


def _cfg(root: Path) -> TrainConfig:
    changes = {
        # One base model folder for every run of the module: it is written once, by the baseline.
        "model.cache_dir": str(root.parent / "base"),
        "data.train_size": 16,
        "data.test_size": 4,
        "algorithm.steps": STEPS,
        "algorithm.group_size": 2,
        "algorithm.prompts_per_step": 2,
        "algorithm.max_new_tokens": 8,
        "algorithm.micro_batch_size": 4,
        "algorithm.lr": 1e-3,
        "trainer.output_dir": str(root),
        "trainer.checkpoint_every": 1,
        "trainer.keep_last": 2,
        "trainer.threads": 2,
        "tracking.backend": "null",
    }
    return train_config("intuitor", overrides=changes)


def _spawn(root: Path, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    cfg_file = root.parent / f"{root.name}.json"
    cfg_file.write_text(json.dumps(to_dict(_cfg(root))), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(cfg_file)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _without_times(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "throughput/"))} for r in records]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """An uninterrupted run (in this process)."""
    root = tmp_path_factory.mktemp("faults") / "baseline"
    run_training(_cfg(root), show_progress=False)
    return root


def _assert_same_as(baseline: Path, root: Path) -> None:
    want, got = (
        load_file(str(baseline / "final" / "model.safetensors")),
        load_file(str(root / "final" / "model.safetensors")),
    )
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    # via JSON text: NaN == NaN there
    assert json.dumps(_without_times(root / "metrics.jsonl")) == json.dumps(
        _without_times(baseline / "metrics.jsonl")
    )


@pytest.mark.parametrize(
    ("fault", "resumes_from"),
    [("rollout@2", 2), ("update@2", 2), ("checkpoint_write@3", 2)],
)
def test_kill_at_a_fault_point_resumes_identically(baseline, fault: str, resumes_from: int) -> None:
    root = baseline.parent / f"kill-{fault.replace('@', '-')}"
    proc = _spawn(root, {"INTUITOR_FAULT": fault})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    ckpts = root / "checkpoints"
    if fault.startswith("checkpoint_write"):
        # the weights of step 3 were on disk in the temporary folder, which must never be loaded
        assert (ckpts / ".step_000003.tmp" / "model.safetensors").is_file()
    assert latest_valid_checkpoint(ckpts).name == f"step_{resumes_from:06d}"
    result = run_training(_cfg(root), show_progress=False)
    assert result.resumed_from == resumes_from
    assert not list(ckpts.glob(".step_*.tmp"))
    _assert_same_as(baseline, root)


def test_kill_at_a_random_moment_resumes_identically(baseline) -> None:
    root = baseline.parent / "kill-random"
    proc = _spawn(root)
    log = root / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text(encoding="utf-8").strip()) and proc.poll() is None:
        assert time.monotonic() < deadline, "no step finished in 120 s"
        time.sleep(0.02)
    delay = random.uniform(0.0, 1.0)  # a moment anywhere in the next steps
    time.sleep(delay)
    killed = proc.poll() is None
    proc.kill()
    proc.communicate(timeout=60)
    assert not killed or proc.returncode == -signal.SIGKILL
    result = run_training(_cfg(root), show_progress=False)
    assert (not killed and result.resumed_from == STEPS) or result.resumed_from < STEPS, delay
    _assert_same_as(baseline, root)


def test_damaged_checkpoint_is_skipped_not_loaded(baseline, caplog) -> None:
    root = baseline.parent / "damaged"
    run_training(_cfg(root), show_progress=False, stop_after=3)
    newest = list_checkpoints(root / "checkpoints")[-1]
    assert newest.name == "step_000003" and verify_checkpoint(newest) is None
    weights = newest / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one flipped bit in a weight: it would load without complaint
    weights.write_bytes(bytes(data))
    assert "SHA-256" in verify_checkpoint(newest)
    with caplog.at_level("WARNING"):
        result = run_training(_cfg(root), show_progress=False)
    assert result.resumed_from == 2
    assert any("damaged" in r.getMessage() for r in caplog.records)
    _assert_same_as(baseline, root)


def test_torn_metrics_line_is_dropped(baseline) -> None:
    root = baseline.parent / "torn"
    run_training(_cfg(root), show_progress=False, stop_after=2)
    with open(root / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 2, "loss": 0.1')  # what a kill in the middle of an append leaves
    assert run_training(_cfg(root), show_progress=False).resumed_from == 2
    _assert_same_as(baseline, root)


def _limit_file_size() -> None:
    # Larger than a metrics line, smaller than the model's weights file (~150 kB).
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(baseline) -> None:
    root = baseline.parent / "full"
    run_training(_cfg(root), show_progress=False, stop_after=2)
    proc = _spawn(root, preexec_fn=_limit_file_size)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert "could not write checkpoint" in err and "File too large" in err, err[-3000:]
    assert "step_000002 is intact" in err, err[-3000:]
    ckpts = root / "checkpoints"
    # the half-written step 3 was removed, the older ones kept
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_000001", "step_000002"]
    assert verify_checkpoint(ckpts / "step_000002") is None
    assert run_training(_cfg(root), show_progress=False).resumed_from == 2
    _assert_same_as(baseline, root)
