"""Named fault points: where the reliability tests kill the process (SIGKILL) at an exact place.

A crash at a random moment rarely lands inside a checkpoint write, so the tests also name the place:
`INTUITOR_FAULT="checkpoint_write@2"` kills the process when point `checkpoint_write` is passed with
index 2; `"eval_batch@1,rollout@0"` lists several. Without the variable a fault point is one
environment lookup. Names in use, with the index they take:
- rollout@step: the step's samples generated, only in memory;
- update@step: the backward passes done, the optimizer step not;
- checkpoint_write@step: a checkpoint's weights on disk in its temporary folder, the optimizer state not;
- eval_batch@chunk: an evaluation chunk generated and graded, not yet appended to the partial file;
- tracking_replay@seq: a spooled tracking op replayed, its progress not yet recorded.
"""

from __future__ import annotations

import os
import signal

ENV = "INTUITOR_FAULT"


def planned(name: str, index: int, env: str | None = None) -> bool:
    """Whether INTUITOR_FAULT (or `env`) names point `name` at `index`."""
    spec = os.environ.get(ENV, "") if env is None else env
    for item in spec.split(","):
        point, _, at = item.strip().partition("@")
        if point == name and at.strip().lstrip("-").isdigit() and int(at) == index:
            return True
    return False


def fault_point(name: str, index: int) -> None:
    """SIGKILL this process here if INTUITOR_FAULT names `name@index`: no cleanup, no flush, like
    the OOM killer or a pulled plug would."""
    if planned(name, index):
        os.kill(os.getpid(), signal.SIGKILL)
