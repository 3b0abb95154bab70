"""`trainer.mixed_precision: auto` resolves from the hardware, and what runs is what is recorded."""

from __future__ import annotations

import pytest
import torch
from smoke_config import train_config

from pipeline.modeling.precision import (
    autocast,
    cpu_flags,
    cpu_has_bf16,
    generation_precision,
    resolve_mixed_precision,
    with_resolved_precision,
)

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"


def test_cpu_flags_reads_the_flags_line() -> None:
    assert {"avx512_bf16", "amx_bf16"} <= cpu_flags(SAPPHIRE_RAPIDS)
    assert "avx512_bf16" not in cpu_flags(SKYLAKE)
    assert cpu_flags("model name : x\n") == set()


def test_cpu_without_bf16_units_stays_in_full_precision(tmp_path) -> None:
    (tmp_path / "skylake").write_text(SKYLAKE)
    assert cpu_has_bf16(str(tmp_path / "skylake")) is False
    assert cpu_has_bf16(str(tmp_path / "no_such_file")) is False
    (tmp_path / "spr").write_text(SAPPHIRE_RAPIDS)
    # With the flags, the answer is oneDNN's (whether this torch build can use them).
    assert cpu_has_bf16(str(tmp_path / "spr")) is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_explicit_settings_are_kept_and_auto_follows_the_hardware() -> None:
    assert resolve_mixed_precision("no", "cpu") == "no"
    assert resolve_mixed_precision("bf16", "cpu") == "bf16"
    assert resolve_mixed_precision("auto", "cpu") == ("bf16" if cpu_has_bf16() else "no")
    assert resolve_mixed_precision("auto", "meta") == "no"
    with pytest.raises(ValueError, match="fp8"):
        resolve_mixed_precision("fp8", "cpu")


def test_hf_generation_stays_in_the_weights_precision_on_cpu_only() -> None:
    for setting in ("auto", "bf16", "no"):
        assert generation_precision(setting, "cpu") == "no"
    assert generation_precision("bf16", "cuda") == "bf16"
    assert generation_precision("no", "cuda:0") == "no"


def test_resolved_copy_leaves_the_callers_config_alone() -> None:
    cfg = train_config(overrides={"trainer.mixed_precision": "auto"})
    resolved = with_resolved_precision(cfg, "cpu")
    assert resolved.trainer.mixed_precision == resolve_mixed_precision("auto", "cpu")
    assert cfg.trainer.mixed_precision == "auto"
    fixed = train_config(overrides={"trainer.mixed_precision": "no"})
    assert with_resolved_precision(fixed, "cpu") is fixed


def test_autocast_computes_matmuls_in_bf16_only_when_asked() -> None:
    a = torch.randn(4, 8)
    with autocast("bf16", "cpu"):
        assert (a @ a.T).dtype == torch.bfloat16
    with autocast("no", "cpu"):
        assert (a @ a.T).dtype == torch.float32
    with pytest.raises(ValueError, match="resolved"):
        autocast("auto", "cpu")
