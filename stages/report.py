"""Stage report: results/report.md (paper-style table + training summary) and results/plots/*.png."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.report import write_report
from stages.common import run_stage


def report(cfg: PipelineConfig) -> None:
    text = write_report(
        Path("results/eval"),
        Path("results/train"),
        Path("results/report.md"),
        cfg.experiment.name,
        list(cfg.methods),
        list(cfg.benchmarks),
    )
    print(text)


if __name__ == "__main__":
    sys.exit(run_stage(report))
