"""Typed config validation: errors name the dotted key path and the allowed values; values live in
conf/ only (no dataclass default repeats one)."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path

import pytest
import yaml
from smoke_config import smoke, train_config

from pipeline.config import (
    BenchmarkConfig,
    ConfigError,
    PipelineConfig,
    RewardSpec,
    TrainConfig,
    TrainerConfig,
    affects_trajectory,
    apply_override,
    build,
    to_dict,
)
from pipeline.config.compose import CONF_DIR
from pipeline.rl.checkpoint import run_fingerprint
from pipeline.types import Prompt


def _tree(**overrides) -> dict:
    tree = to_dict(train_config("intuitor"))
    for key, value in overrides.items():
        apply_override(tree, key.replace("__", "."), value)
    return tree


def test_round_trip() -> None:
    cfg = train_config("grpo")
    assert build(TrainConfig, to_dict(cfg)) == cfg
    assert build(PipelineConfig, to_dict(smoke())) == smoke()


def test_nested_values_are_typed() -> None:
    rewards = [
        {"name": "gold", "weight": 1, "source": "policy"},
        {"name": "entropy", "weight": 0.1, "source": "policy"},
    ]
    tree = _tree(algorithm__beta=0, algorithm__adam_betas=[0.9, 0.99], method__rewards=rewards)
    cfg = build(TrainConfig, tree)
    assert cfg.algorithm.beta == 0.0 and isinstance(cfg.algorithm.beta, float)
    assert cfg.algorithm.adam_betas == (0.9, 0.99)
    assert cfg.method.rewards == [
        RewardSpec(name="gold", weight=1.0, source="policy"),
        RewardSpec(name="entropy", weight=0.1, source="policy"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algorithm.stepz": 3}, "algorithm.stepz: unknown key"),
        ({"algorithm.steps": "3"}, "algorithm.steps: expected an integer"),
        ({"algorithm.steps": True}, "algorithm.steps: expected an integer"),
        ({"algorithm.loss_aggregation": "sum"}, "allowed values: ['grpo', 'bnpo', 'dapo', 'dr_grpo']"),
        ({"algorithm.adam_betas": [0.9]}, "algorithm.adam_betas: expected a list of 2"),
        (
            {"method.rewards": [{"weight": 1.0, "source": "policy"}]},
            "method.rewards[0].name: required key is missing",
        ),
        (
            {"method.rewards": [{"name": "gold", "weight": 1.0, "source": "oracle"}]},
            "method.rewards[0].source",
        ),
        ({"tracking": "mlflow"}, "tracking: expected a mapping"),
        ({"algorithm.lr": -1.0}, "algorithm.lr: -1.0 is out of range; allowed values: [0, inf]"),
        ({"algorithm.top_p": 1.5}, "algorithm.top_p: 1.5 is out of range; allowed values: [0, 1]"),
    ],
)
def test_bad_configs_name_the_key(change: dict, message: str) -> None:
    tree = _tree()
    for key, value in change.items():
        apply_override(tree, key, value)
    with pytest.raises(ConfigError) as e:
        build(TrainConfig, tree)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "key", ["algorithm.lr", "trainer.checkpoint_every", "model.system_prompt", "rollout.engine"]
)
def test_a_missing_key_is_an_error_naming_it(key: str) -> None:
    tree = _tree()
    section, name = key.split(".")
    del tree[section][name]
    with pytest.raises(ConfigError, match=f"^{key}: required key is missing"):
        build(TrainConfig, tree)


def test_optional_fields_accept_null() -> None:
    cfg = build(TrainConfig, _tree(data__limit=None, data__path=None, model__system_prompt=None))
    assert cfg.data.limit is None and cfg.model.system_prompt is None


def _defaults(cls: type) -> dict[str, object]:
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


def _sections(cls: type) -> list[type]:
    """cls and every config dataclass reachable from its fields."""
    found, todo = [], [cls]
    while todo:
        c = todo.pop()
        if c in found:
            continue
        found.append(c)
        hints = typing.get_type_hints(c)
        for tp in hints.values():
            for arg in (tp, *typing.get_args(tp)):
                for inner in (arg, *typing.get_args(arg)):
                    if dataclasses.is_dataclass(inner):
                        todo.append(inner)
    return found


def test_values_live_in_conf_only() -> None:
    # Every section params.yaml fills is all-required: a value a dataclass default repeated could
    # disagree with conf/ (tests would then run a configuration no user runs).
    for cls in _sections(PipelineConfig):
        allowed = {"judge": None} if cls is BenchmarkConfig else {}
        assert _defaults(cls) == allowed, cls.__name__
    # ... and the one optional section is set by no conf/ file to its default (written once).
    for path in (CONF_DIR / "eval").glob("*.yaml"):
        assert "judge" not in yaml.safe_load(path.read_text()) or path.stem == "alpaca_eval", path


def test_trajectory_fields_change_the_run_fingerprint_and_bookkeeping_fields_do_not() -> None:
    cfg = train_config("intuitor")
    prompts = [Prompt(id="p/0", messages=[{"role": "user", "content": "1+1?"}], gold="2")]
    base = run_fingerprint(cfg, prompts)
    changed = {"bool": lambda v: not v, "int": lambda v: v + 1, "str": lambda v: f"{v}x"}
    for f in dataclasses.fields(TrainerConfig):
        value = getattr(cfg.trainer, f.name)
        other = copy.deepcopy(cfg)
        new = changed[type(value).__name__](value) if value is not None else "conf/accelerate/ddp.yaml"
        setattr(other.trainer, f.name, new)
        assert (run_fingerprint(other, prompts) != base) == affects_trajectory(f), f.name
    other = copy.deepcopy(cfg)
    other.algorithm.lr *= 2
    assert run_fingerprint(other, prompts) != base
    # placement and bookkeeping, by name: what a resumed run may change without restarting
    neutral = {f.name for f in dataclasses.fields(TrainerConfig) if not affects_trajectory(f)}
    assert {"output_dir", "processes", "resume", "gradient_checkpointing"} <= neutral
    assert not {"seed", "device", "mixed_precision"} & neutral


def test_every_conf_file_composes(tmp_path: Path) -> None:
    from pipeline.config.compose import compose_config

    for group in ("model", "trainer", "rollout", "data", "experiment"):
        for path in (CONF_DIR / group).glob("*.yaml"):
            compose_config([f"{group}={path.stem}"])
