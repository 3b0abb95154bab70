"""Tracking against a real MLflow sqlite store in a temporary folder (no mocks), read back by MlflowClient."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from smoke_config import tracking_config

from pipeline.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    MLflowTracker,
    NullTracker,
    flatten_params,
    make_tracker,
    sanitize_key,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object, Path]:
    """One sqlite store per module: creating its tables takes seconds, so it is shared by the tests."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.search_experiments()  # runs the schema migration once, here
    return uri, client, folder


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("repo")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    return repo, sha.stdout.strip()


def _tracker(store: tuple[str, object, Path], experiment: str = "unit") -> MLflowTracker:
    return MLflowTracker(tracking_config(store[2], experiment=experiment))


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_full_run_round_trip(store, git_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, client, _ = store
    repo, sha = git_repo
    monkeypatch.chdir(repo)  # the git sha is read from the working directory
    tracker = _tracker(store)
    run_id = tracker.start("intuitor-s0", tags={"method": "intuitor", "seed": 0})  # type: ignore[dict-item]
    assert run_id is not None and tracker.run_id == run_id

    config = {"algorithm": {"lr": 1e-6, "group_size": 4, "betas": [0.9, 0.999]}, "method": {"name": "x"}}
    tracker.log_params({**config, "long": "y" * (MAX_PARAM_VALUE_LENGTH + 1000), "empty": {}})
    for step in range(3):
        tracker.log_metrics({"reward/mean": 0.5 * step, "pass@1": step / 10, "loss": 1.0 - step}, step=step)
    tracker.log_dict(config, "config.yaml")
    rows = [{"prompt": "1+1?", "completion": "2", "reward": 1.0}, {"prompt": "2+2?", "extra": [1, 2]}]
    tracker.log_table(rows, "completions/step_0002.json")
    note = tmp_path / "notes.txt"
    note.write_text("hello")
    tracker.log_artifact(note)
    tracker.end()
    assert tracker.run_id is None
    tracker.end()  # idempotent

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert run.info.run_name == "intuitor-s0"
    assert _history(client, run_id, "reward/mean") == [(0, 0.0), (1, 0.5), (2, 1.0)]
    assert _history(client, run_id, "pass_at_1") == [(0, 0.0), (1, 0.1), (2, 0.2)]
    assert "pass@1" not in run.data.metrics
    params = run.data.params
    assert params["algorithm.lr"] == "1e-06" and params["algorithm.group_size"] == "4"
    assert params["algorithm.betas"] == "[0.9, 0.999]" and params["method.name"] == "x"
    assert len(params["long"]) == MAX_PARAM_VALUE_LENGTH and params["empty"] == "{}"
    tags = run.data.tags
    assert tags["method"] == "intuitor" and tags["seed"] == "0"
    assert tags["git_sha"] == sha
    assert "mlflow.parentRunId" not in tags

    top = {f.path for f in client.list_artifacts(run_id)}
    assert {"config.yaml", "notes.txt", "completions"} <= top
    assert [f.path for f in client.list_artifacts(run_id, "completions")] == ["completions/step_0002.json"]
    table_file = client.download_artifacts(run_id, "completions/step_0002.json", str(tmp_path))
    table = json.loads(Path(table_file).read_text())
    assert table["columns"] == ["prompt", "completion", "reward", "extra"]
    assert table["data"][1] == ["2+2?", None, None, "[1, 2]"]
    yaml_text = Path(client.download_artifacts(run_id, "config.yaml", str(tmp_path))).read_text()
    assert "group_size: 4" in yaml_text


def test_artifacts_live_next_to_the_db(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, client, folder = store
    monkeypatch.chdir(tmp_path)  # MLflow's default would be ./mlruns here
    tracker = _tracker(store, experiment="artifact location")
    with tracker.run("a") as run_id:
        tracker.log_dict({"a": 1}, "a.json")
    exp = client.get_experiment_by_name("artifact location")
    assert exp.artifact_location == (folder / "mlruns" / "artifact_location").as_uri()
    assert (folder / "mlruns" / "artifact_location" / run_id / "artifacts" / "a.json").exists()
    assert not (tmp_path / "mlruns").exists()


def test_child_run_has_parent_tag(store, monkeypatch: pytest.MonkeyPatch) -> None:
    _, client, _ = store
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    parent, child_tracker = _tracker(store), _tracker(store)
    with parent.run("sweep") as parent_id, child_tracker.run("seed-1", parent_run_id=parent_id) as child:
        assert child != parent_id
    assert "MLFLOW_RUN_ID" not in os.environ
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent_id
    assert "mlflow.parentRunId" not in client.get_run(parent_id).data.tags
    assert client.get_run(child).info.status == client.get_run(parent_id).info.status == "FINISHED"


def test_context_manager_marks_failed_run(store) -> None:
    _, client, _ = store
    tracker = _tracker(store)
    with pytest.raises(RuntimeError, match="boom"), tracker.run("crash") as run_id:
        raise RuntimeError("boom")
    assert client.get_run(run_id).info.status == "FAILED"
    assert tracker.run_id is None
    with pytest.raises(ValueError, match="status"):
        tracker.end("DONE")


def test_odd_metric_values_never_raise(store, caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    _, client, _ = store
    tracker = _tracker(store)
    run_id = tracker.start("odd")
    with pytest.raises(RuntimeError, match="still active"):
        tracker.start("second")
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking"):
        tracker.log_metrics(
            {"nan": float("nan"), "inf": math.inf, "np": np.float32(0.25), "text": "x", "none": None},  # type: ignore[dict-item]
            step=0,
        )
        tracker.log_params({"lr": 1})
        tracker.log_params({"lr": 2, "new": 3})  # changing a param is rejected: only "lr" is dropped
    tracker.end()
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"]) and metrics["inf"] > 1e300 and metrics["np"] == 0.25
    assert "text" not in metrics and "none" not in metrics
    assert "non-numeric" in caplog.text and "log_params(lr) failed" in caplog.text
    assert client.get_run(run_id).data.params == {"lr": "1", "new": "3"}


def test_logging_without_a_run_is_a_no_op(store) -> None:
    tracker = _tracker(store)
    tracker.log_metrics({"a": 1.0}, step=0)
    tracker.log_params({"a": 1})
    tracker.end()
    with pytest.raises(ValueError, match=r"\.json or \.parquet"):
        tracker.log_table([{"a": 1}], "table.csv")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("pass@1", "pass_at_1"),
        ("a b/c:d", "a b/c:d"),
        ("reward/mean", "reward/mean"),
        ("maj@16/math500", "maj_at_16/math500"),
        ("accuracy_é", "accuracy__"),
        ("kl(θ‖ref)", "kl___ref_"),
        ("a//b/./c/", "a/b/c"),
        ("/../x", "__/x"),
        ("", "_"),
        ("k" * 300, "k" * 250),
    ],
)
def test_sanitize_key(key: str, expected: str) -> None:
    assert sanitize_key(key) == expected


def test_flatten_params() -> None:
    assert flatten_params({"a": {"b": {"c": 1}, "d@2": None}, "e": True}) == {
        "a.b.c": "1",
        "a.d_at_2": "None",
        "e": "True",
    }


def test_null_tracker_records_nothing(tmp_path: Path) -> None:
    tracker = make_tracker(tracking_config(tmp_path / "x", backend="null"))
    assert isinstance(tracker, NullTracker)
    with tracker.run("r", tags={"a": "b"}) as run_id:
        assert run_id is None and tracker.run_id is None
        tracker.log_params({"a": {"b": 1}})
        tracker.log_metrics({"m": 1.0}, step=0)
        tracker.log_dict({"a": 1}, "c.yaml")
        tracker.log_table([{"a": 1}], "t.json")
        tracker.log_artifact(tmp_path / "missing.txt")
    assert list(tmp_path.iterdir()) == []


def test_make_tracker_mlflow_and_lazy_import(store) -> None:
    from pipeline.tracking.spool import SpoolingTracker

    # the MLflow tracker comes wrapped: calls are spooled while the store is down (issue 7)
    assert isinstance(make_tracker(tracking_config(store[2])), SpoolingTracker)
    code = (
        "import sys, pipeline.tracking, pipeline.tracking.spool; "
        "assert 'mlflow' not in sys.modules and 'sqlalchemy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_anchor_store_points_queued_experiments_at_the_project_store() -> None:
    from pipeline.tracking import anchor_store

    assert anchor_store("sqlite:///mlflow.db", "/p/repo") == "sqlite:////p/repo/mlflow.db"
    assert (
        anchor_store("sqlite:///mlflow.db", "/p/repo/.dvc/tmp/exps/tmpab12") == "sqlite:////p/repo/mlflow.db"
    )
    assert anchor_store("sqlite:////abs/x.db", "/p/repo") == "sqlite:////abs/x.db"
    assert anchor_store("http://server:5000", "/p/repo") == "http://server:5000"


def test_experiments_open_as_model_training_and_parents_get_headline_numbers(store) -> None:
    from pipeline.tracking import log_to_parent, parent_run_id

    _, client, folder = store
    # an experiment made before the tag existed gets it on first use
    old = client.create_experiment("made-by-hand")
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    _tracker(store, "made-by-hand").experiment_id()
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    fresh = client.get_experiment(_tracker(store, "fresh").experiment_id())
    assert fresh.tags["mlflow.experimentKind"] == "custom_model_development"

    cfg = tracking_config(folder, experiment="fresh")
    parent = parent_run_id(cfg, "inv-1")
    log_to_parent(cfg, parent, [{"reward/intuitor": 1.0}, {"reward/intuitor": 2.5}])
    log_to_parent(cfg, parent, [{"arith/intuitor": 0.25}])
    assert _history(client, parent, "reward/intuitor") == [(0, 1.0), (1, 2.5)]
    assert client.get_run(parent).data.metrics == {"reward/intuitor": 2.5, "arith/intuitor": 0.25}
    log_to_parent(cfg, None, [{"x": 1.0}])  # no parent (store was down): nothing to do, no error
    log_to_parent(tracking_config(folder, experiment="fresh", backend="null"), parent, [{"y": 1.0}])
    assert "y" not in client.get_run(parent).data.metrics
