"""A bad params.yaml stops a stage at its start, before any model loads, with the key's path and the
allowed values, as one line on stderr and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config.compose import compose_params
from stages.common import run_stage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_params(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    compose_params(path, ["experiment=smoke"], conf_dir=REPO / "conf")
    tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    # A model that does not exist: a stage that got as far as loading it would fail differently.
    tree["model"]["cache_dir"] = "models/not-there"
    tree["evaluate_models"]["base"] = "models/not-there"
    return tree


def _write(tmp_path: Path, tree: dict, edit) -> Path:
    tree = yaml.safe_load(yaml.safe_dump(tree))  # a deep copy
    edit(tree)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path


def _set(section: str, key: str, value):
    def edit(tree: dict) -> None:
        node = tree
        for part in section.split("."):
            node = node[part]
        node[key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("algorithm", "stepz", 3), "algorithm.stepz: unknown key; allowed keys of AlgorithmConfig: ["),
        (_set("algorithm", "lr", "fast"), "algorithm.lr: expected a number, got 'fast'"),
        (
            _set("algorithm", "loss_aggregation", "sum"),
            "algorithm.loss_aggregation: 'sum' is not allowed; "
            "allowed values: ['grpo', 'bnpo', 'dapo', 'dr_grpo']",
        ),
        (
            _set("algorithm", "group_size", 0),
            "algorithm.group_size: 0 is out of range; allowed values: [1, inf]",
        ),
        (_set("trainer", "mixed_precision", "fp8"), "trainer.mixed_precision: 'fp8' is not allowed"),
        (_set("benchmarks.arith", "n_samples", 0), "benchmarks.arith.n_samples: 0 is out of range"),
        (
            lambda t: t["methods"]["intuitor"]["rewards"][0].update(name="self_certainy"),
            "methods.intuitor.rewards[0].name: unknown reward 'self_certainy'; allowed values: [",
        ),
    ],
)
def test_bad_key_fails_at_stage_start(tmp_path, smoke_params, edit, message: str, capsys) -> None:
    path = _write(tmp_path, smoke_params, edit)

    def body(cfg) -> None:
        raise AssertionError("the stage body ran on a bad config")

    assert run_stage(body, str(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("stage", "edit", "message"),
    [
        (
            ["stages.train", "--method", "grpo"],
            _set("trainer", "checkpoint_evry", 1),
            "trainer.checkpoint_evry: unknown key; allowed keys of TrainerConfig",
        ),
        (
            ["stages.evaluate", "--model", "base", "--benchmark", "arith"],
            _set("benchmarks.arith", "max_new_tokens", "8"),
            "benchmarks.arith.max_new_tokens: expected an integer, got '8'",
        ),
    ],
)
def test_stage_cli_rejects_bad_params_before_loading(tmp_path, smoke_params, stage, edit, message) -> None:
    _write(tmp_path, smoke_params, edit)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", *stage], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "models").exists() and not (tmp_path / "runs").exists()
