"""The stages that load no model start without torch: its import (with transformers) took 4-5 s of
prepare_data's and report's few seconds (bench/light_stages.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stage", ["prepare_data", "report"])
def test_light_stage_imports_no_torch(stage: str) -> None:
    code = (
        f"import sys, stages.{stage}, stages.common, pipeline.steps\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'vllm', 'mlflow') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
