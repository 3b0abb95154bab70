"""Stage prepare_data: training prompts (data/train.jsonl) and each benchmark's items (data/eval/)."""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.config.params import check_benchmarks
from pipeline.steps import prepare_data
from stages.common import finish, run_stage


def main(cfg: PipelineConfig) -> None:
    for name, n in prepare_data(cfg).items():
        print(f"{name}: {n} records")


if __name__ == "__main__":
    finish(run_stage(main, check=check_benchmarks))
