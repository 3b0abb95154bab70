"""Entry point the distributed tests start through the trainer's launcher (torchrun on CPU).

    python tests/integration/ddp_worker.py CONFIG.json [STOP_AFTER]

Trains with `run_training` exactly as the train stage does; one process or several, it cannot tell.
"""

from __future__ import annotations

import json
import sys

from pipeline.config import TrainConfig, build
from pipeline.steps import run_training

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = build(TrainConfig, json.load(f))
    run_training(cfg, show_progress=False, stop_after=int(sys.argv[2]) if len(sys.argv) > 2 else None)
