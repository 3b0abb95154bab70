"""Typed config validation: errors name the dotted key path and the allowed values."""

from __future__ import annotations

import pytest

from pipeline.config import AlgorithmConfig, ConfigError, RewardSpec, TrainConfig, build, to_dict


def test_defaults_round_trip() -> None:
    cfg = TrainConfig()
    assert build(TrainConfig, to_dict(cfg)) == cfg


def test_nested_values_are_typed() -> None:
    cfg = build(
        TrainConfig,
        {
            "algorithm": {"beta": 0, "adam_betas": [0.9, 0.99], "loss_aggregation": "grpo"},
            "method": {"name": "mix", "rewards": [{"name": "gold"}, {"name": "entropy", "weight": 0.1}]},
        },
    )
    assert cfg.algorithm.beta == 0.0 and isinstance(cfg.algorithm.beta, float)
    assert cfg.algorithm.adam_betas == (0.9, 0.99)
    assert cfg.method.rewards == [RewardSpec("gold"), RewardSpec("entropy", weight=0.1)]


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"algorithm": {"stepz": 3}}, "algorithm.stepz: unknown key"),
        ({"algorithm": {"steps": "3"}}, "algorithm.steps: expected an integer"),
        ({"algorithm": {"steps": True}}, "algorithm.steps: expected an integer"),
        ({"algorithm": {"loss_aggregation": "sum"}}, "allowed values: ['grpo', 'bnpo', 'dapo', 'dr_grpo']"),
        ({"algorithm": {"adam_betas": [0.9]}}, "algorithm.adam_betas: expected a list of 2"),
        ({"method": {"rewards": [{"weight": 1.0}]}}, "method.rewards[0].name: required key is missing"),
        ({"method": {"rewards": [{"name": "gold", "source": "oracle"}]}}, "method.rewards[0].source"),
        ({"tracking": "mlflow"}, "tracking: expected a mapping"),
    ],
)
def test_bad_configs_name_the_key(tree: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        build(TrainConfig, tree)
    assert message in str(e.value)


def test_optional_fields_accept_null() -> None:
    assert build(AlgorithmConfig, {}) == AlgorithmConfig()
    cfg = build(TrainConfig, {"data": {"limit": None, "path": None}, "model": {"system_prompt": None}})
    assert cfg.data.limit is None and cfg.model.system_prompt is None
