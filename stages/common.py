"""What every stage shares: validated params before any model loads, and known failures mapped to one
line on stderr and an exit code: 2 bad config or data, 3 a diverged run, 4 a checkpoint not written."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from pipeline.config import ConfigError, PipelineConfig
from pipeline.config.params import check_runnable, load_params
from pipeline.data.jsonl import DataError
from pipeline.parallel.strategy import launched_world_size
from pipeline.rl.divergence import TrainingDiverged


def exit_code(error: Exception) -> int | None:
    """The exit code of a failure a stage reports in one line; None for any other exception."""
    # Imported only once something failed: the checkpoint module needs torch, which report never does.
    from pipeline.rl.checkpoint import CheckpointError

    codes: dict[type[Exception], int] = {
        ConfigError: 2,
        DataError: 2,
        TrainingDiverged: 3,
        CheckpointError: 4,
    }
    return next((code for kind, code in codes.items() if isinstance(error, kind)), None)


def run_stage(
    body: Callable[[PipelineConfig], object],
    params: str = "params.yaml",
    check: Callable[[PipelineConfig], None] = check_runnable,
) -> int:
    """Load and validate params.yaml, `check` that it can run here, run the stage body; a known failure
    prints one line (`exit_code`). Stages that neither train nor generate (prepare_data, report) check
    only their part (`check_benchmarks`): the rest needs torch, a 4-5 s import for seconds of work."""
    try:
        cfg = load_params(params)
        try:
            check(cfg)
        except ConfigError as e:
            raise ConfigError(f"{params}: {e}") from e
        body(cfg)
    except Exception as e:
        code = exit_code(e)
        if code is None:
            raise
        print(f"error: {e}", file=sys.stderr)
        return code
    return 0


def finish(code: int) -> NoReturn:
    """End a stage's process with exit status `code`, skipping the interpreter's teardown.

    Why: once a stage has returned, its outputs are on disk (written atomically and fsynced, MLflow's
    sqlite store commits every call), yet a vLLM stage's process took 3.5-4.5 s more to end (measured:
    vLLM's atexit shutdown runs the garbage collector twice, then the interpreter frees the KV cache,
    the models and every module one by one), paid by each of the demo's 7 vLLM stages. The standard
    streams and logging handlers are flushed first, so nothing printed is lost. A process started by
    torchrun or accelerate (WORLD_SIZE > 1) ends normally: its process group is torn down as usual.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if launched_world_size() > 1:
        sys.exit(code)
    logging.shutdown()
    os._exit(code)
