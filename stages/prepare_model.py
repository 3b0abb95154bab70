"""Stage prepare_model: the base model (embedded GGUF dequantized, tiny model built, or hub/local model
copied) into `model.cache_dir` (models/base), which every later stage loads."""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.steps import prepare_model
from stages.common import finish, run_stage


def main(cfg: PipelineConfig) -> None:
    print(f"base model ready in {prepare_model(cfg)}")


if __name__ == "__main__":
    finish(run_stage(main))
