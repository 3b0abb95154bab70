"""Compose conf/ into params.yaml exactly as DVC's Hydra integration does (`dvc exp run -S ...`);
the command line is `python -m cli.compose [override ...]`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config.sections import PipelineConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_params(output: str | Path, overrides: list[str], conf_dir: Path = CONF_DIR) -> Path:
    """Write the composition of conf_dir/config.yaml with `overrides` to `output` (YAML)."""
    # DVC's own function, so the committed params.yaml is byte-identical to what `dvc exp run` writes.
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(str(output), str(conf_dir.resolve()), None, "config", str(conf_dir.resolve()), overrides)
    return Path(output)


def compose_config(overrides: list[str], conf_dir: Path = CONF_DIR) -> PipelineConfig:
    """The validated PipelineConfig of conf_dir with `overrides` (e.g. ["experiment=smoke"]), composed
    as `dvc exp run -S` would: what tests and benchmarks run instead of hand-built configs."""
    from pipeline.config.params import load_params

    with tempfile.TemporaryDirectory() as tmp:
        return load_params(compose_params(Path(tmp) / "params.yaml", overrides, conf_dir))
