"""DeepSpeed and FSDP2 settings from accelerate configs: what the user may set, what the trainer owns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import ConfigError
from pipeline.parallel.fsdp import fsdp_settings
from pipeline.parallel.strategy import read_strategy
from pipeline.parallel.zero import deepspeed_plugin, deepspeed_settings


def test_shipped_zero_configs_give_their_stage() -> None:
    for stage in (2, 3):
        tree = read_strategy(Path(f"conf/accelerate/deepspeed_zero{stage}.yaml"))
        assert tree["deepspeed"]["zero_optimization"]["stage"] == stage
        assert tree["deepspeed"]["zero_optimization"]["offload_optimizer"] == {"device": "none"}


def test_config_file_is_read_and_checked(tmp_path: Path) -> None:
    spec = tmp_path / "ds.json"
    spec.write_text(json.dumps({"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}))
    got = deepspeed_settings({"deepspeed_config_file": str(spec)}, tmp_path / "acc.yaml")
    assert got["zero_optimization"]["stage3_param_persistence_threshold"] == 0
    spec.write_text(json.dumps({"zero_optimization": {"stage": 2}, "bf16": {"enabled": True}}))
    with pytest.raises(ConfigError, match=r"ds\.json: bf16\.enabled"):
        deepspeed_settings({"deepspeed_config_file": str(spec)}, tmp_path / "acc.yaml")
    spec.write_text("{not json")
    with pytest.raises(ConfigError, match=r"acc\.yaml: deepspeed_config_file .*ds\.json cannot be read"):
        deepspeed_settings({"deepspeed_config_file": str(spec)}, tmp_path / "acc.yaml")
    with pytest.raises(ConfigError, match=r"acc\.yaml: the ZeRO stage \(zero_stage\) must be 1, 2 or 3"):
        deepspeed_settings({}, tmp_path / "acc.yaml")


def test_plugin_takes_the_trainers_settings() -> None:
    settings = deepspeed_settings({"zero_stage": 3}, Path("x.yaml"))
    plugin = deepspeed_plugin(settings, max_grad_norm=0.5)
    cfg = plugin.deepspeed_config
    assert cfg["gradient_clipping"] == 0.5 and cfg["gradient_accumulation_steps"] == 1
    assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert plugin.zero_stage == 3 and not plugin.zero3_init_flag
    assert deepspeed_plugin(settings, max_grad_norm=0.0).deepspeed_config["gradient_clipping"] == 0.0
    assert "stage3_gather_16bit_weights_on_model_save" not in settings["zero_optimization"]  # not mutated


def test_fsdp2_settings() -> None:
    tree = read_strategy(Path("conf/accelerate/fsdp2.yaml"))
    assert tree["fsdp"] == {"reshard_after_forward": True, "layer_classes": None}
    section = {"fsdp_version": 2, "fsdp_reshard_after_forward": False}
    got = fsdp_settings({**section, "fsdp_transformer_layer_cls_to_wrap": "A, B"}, Path("f.yaml"))
    assert got == {"reshard_after_forward": False, "layer_classes": ["A", "B"]}
    for bad, message in [
        ({"fsdp_version": 1}, r"fsdp_version must be 2"),
        ({"fsdp_version": 2, "fsdp_offload_params": True}, r"fsdp_offload_params is not supported"),
        ({"fsdp_version": 2, "fsdp_auto_wrap_policy": "SIZE_BASED_WRAP"}, r"fsdp_auto_wrap_policy must be"),
    ]:
        with pytest.raises(ConfigError, match=r"f\.yaml: fsdp_config\." + message):
            fsdp_settings(bad, Path("f.yaml"))
