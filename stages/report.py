"""Stage report: results/report.md (paper-style table + training summary) and results/plots/*.png."""

from __future__ import annotations

from pipeline.config.params import check_benchmarks
from pipeline.steps import make_report
from stages.common import finish, run_stage

if __name__ == "__main__":
    finish(run_stage(lambda cfg: print(make_report(cfg)), check=check_benchmarks))
