"""What every stage shares: validated params before any model loads, and known failures mapped to one
line on stderr and an exit code: 2 bad config or data, 3 a diverged run, 4 a checkpoint not written."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pipeline.config import ConfigError, PipelineConfig
from pipeline.data.jsonl import DataError
from pipeline.params import check_runnable, load_params
from pipeline.rl.checkpoint import CheckpointError
from pipeline.rl.divergence import TrainingDiverged


def run_stage(body: Callable[[PipelineConfig], object], params: str = "params.yaml") -> int:
    """Load and validate params.yaml, run the stage body; config/data errors print one line, exit 2."""
    try:
        cfg = load_params(params)
        try:
            check_runnable(cfg)
        except ConfigError as e:
            raise ConfigError(f"{params}: {e}") from e
        body(cfg)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    return 0
