"""stages/common.py `finish`: a stage's process ends with its exit status and everything it printed,
without the interpreter's teardown (atexit handlers do not run), except when a launcher started it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A stage's shape: output to both streams (pipes, so block-buffered until flushed), then finish.
_PROGRAM = """
import atexit, sys
from stages.common import finish
atexit.register(lambda: print("atexit ran"))
print("stage output")
print("stage warning", file=sys.stderr)
finish(3)
"""


@pytest.mark.parametrize("world_size", [None, "2"])
def test_finish_flushes_and_exits_with_the_code(world_size: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"}
    if world_size is not None:
        env["WORLD_SIZE"] = world_size
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert "stage output" in done.stdout and "stage warning" in done.stderr
    # Not launched: the process ends at once; under torchrun / accelerate (WORLD_SIZE > 1) it tears down.
    assert ("atexit ran" in done.stdout) == (world_size is not None)
