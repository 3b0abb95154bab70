"""Stage prepare_data: training prompts and every benchmark's items as jsonl records (data/)."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.data.records import write_prompts
from pipeline.data.registry import load_benchmark, load_prompts
from stages.common import run_stage


def prepare(cfg: PipelineConfig) -> None:
    prompts = load_prompts(cfg.data, cfg.model.system_prompt)
    write_prompts(prompts, Path("data/train.jsonl"))
    print(f"data/train.jsonl: {len(prompts)} {cfg.data.name} prompts")
    for name, bench in cfg.benchmarks.items():
        items = load_benchmark(bench, cfg.data, cfg.model.system_prompt)
        write_prompts(items, Path(f"data/eval/{name}.jsonl"))
        print(f"data/eval/{name}.jsonl: {len(items)} items")


if __name__ == "__main__":
    sys.exit(run_stage(prepare))
