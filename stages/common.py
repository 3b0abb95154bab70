"""What every stage shares: validated params before any model loads, and errors mapped to exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pipeline.config import ConfigError, PipelineConfig
from pipeline.data.jsonl import DataError
from pipeline.params import check_runnable, load_params


def run_stage(body: Callable[[PipelineConfig], object], params: str = "params.yaml") -> int:
    """Load and validate params.yaml, run the stage body; config/data errors print one line, exit 2."""
    try:
        cfg = load_params(params)
        check_runnable(cfg)
        body(cfg)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
