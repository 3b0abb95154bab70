"""Fault points fire only where INTUITOR_FAULT names them, and then kill for real."""

from __future__ import annotations

import signal
import subprocess
import sys

from pipeline.faults import planned


def test_spec_names_points_and_indices() -> None:
    spec = "update@2, checkpoint_write@10,eval_batch@x,rollout"
    assert planned("update", 2, spec) and planned("checkpoint_write", 10, spec)
    assert not planned("update", 1, spec) and not planned("checkpoint", 10, spec)
    assert not planned("eval_batch", 0, spec) and not planned("rollout", 0, spec)  # malformed: never
    assert not planned("update", 2, "")


def test_fault_point_sigkills_the_process() -> None:
    code = "from pipeline.faults import fault_point; fault_point('x', 0); fault_point('x', 1); print('alive')"
    env = {"INTUITOR_FAULT": "x@1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL and "alive" not in done.stdout
