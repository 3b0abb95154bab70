"""Stage report: results/report.md (paper-style table + training summary) and results/plots/*.png."""

from __future__ import annotations

import sys

from pipeline.steps import make_report
from stages.common import run_stage

if __name__ == "__main__":
    sys.exit(run_stage(lambda cfg: print(make_report(cfg))))
