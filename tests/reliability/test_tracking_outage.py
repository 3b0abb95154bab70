"""Issue 7: a tracking store that is locked or unreachable never stops a run; its calls are spooled to a
local file and replayed into MLflow when the store is back.

Real MLflow sqlite stores, a real sqlite lock (what a writer in another process, or a stuck one, holds),
a closed port for a dead server; the replay command runs as a subprocess and is SIGKILLed mid-replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from smoke_config import tracking_config, train_config

from pipeline.steps import run_training
from pipeline.tracking import make_tracker, parent_run_id, sanitize_key
from pipeline.tracking.replay import replay_spool

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object, Path]:
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow")
    db = folder / "mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    client.search_experiments()  # creates the schema once (seconds)
    return f"sqlite:///{db}", client, db


@contextlib.contextmanager
def locked(db: Path) -> Iterator[None]:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")  # nobody else may read or write the store until ROLLBACK
    try:
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _runs_of(client, experiment: str, offline_id: str) -> list:
    """The MLflow runs created for the run that `start` named `offline_id`."""
    exp = client.get_experiment_by_name(experiment)
    query = f"tags.`pipeline.client_id` = '{offline_id.removeprefix('offline-')}'"
    return [] if exp is None else client.search_runs([exp.experiment_id], filter_string=query)


def _spools(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _replay_cli(*args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "INTUITOR_FAULT"}
    if fault:
        env["INTUITOR_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "cli.replay", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_locked_store_spools_and_replays_when_released(store, tmp_path: Path) -> None:
    uri, client, db = store
    spool_dir = tmp_path / "spool"
    cfg = tracking_config(tmp_path, tracking_uri=uri, experiment="locked", retry_s=0)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with locked(db):
        t0 = time.monotonic()
        tracker = make_tracker(cfg)  # built while locked: what a stage starting during the outage gets
        run_id = tracker.start("locked-run", tags={"stage": "train"})
        tracker.log_params({"algorithm": {"lr": 0.001}})
        for step in range(4):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "pass@1": step / 4}, step=step)
        tracker.log_dict({"a": 1}, "config.yaml")
        tracker.log_table([{"prompt": "1+1?", "reward": 1.0}], "completions.json")
        tracker.log_artifact(note)
        elapsed = time.monotonic() - t0
        [spool] = _spools(spool_dir)
        ops = [json.loads(line)["op"] for line in spool.read_text().splitlines()]
    released_ms = int(time.time() * 1000)
    note.unlink()  # the spool kept its own copy
    assert elapsed < 20, f"calls waited on the lock: {elapsed:.1f} s"
    assert run_id is not None and run_id.startswith("offline-")
    assert ops == ["header", "start", "params", *["metrics"] * 4, "dict", "table", "artifact"]

    tracker.log_metrics({"loss": 0.2}, step=4)  # retry_s=0: this call finds the store back and replays
    assert not spool.exists() and tracker.spool is None
    real_id = tracker.run_id
    assert real_id is not None and real_id != run_id
    tracker.end()
    assert list(spool_dir.iterdir()) == []  # progress file and artifact copies are gone too

    run = client.get_run(real_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "locked-run"
    assert run.data.tags["pipeline.client_id"] == run_id.removeprefix("offline-")
    assert run.data.tags["stage"] == "train" and run.data.params["algorithm.lr"] == "0.001"
    assert _history(client, real_id, "loss") == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25), (4, 0.2)]
    assert _history(client, real_id, "pass_at_1") == [(s, s / 4) for s in range(4)]
    # replayed metrics keep the time they were measured at, not the replay's
    assert all(m.timestamp < released_ms for m in client.get_metric_history(real_id, "pass_at_1"))
    assert {"config.yaml", "completions.json", "note.txt"} <= {f.path for f in client.list_artifacts(real_id)}
    assert Path(client.download_artifacts(real_id, "note.txt", str(tmp_path))).read_text() == "hello"


def test_store_locked_mid_run_costs_seconds_once(store, tmp_path: Path) -> None:
    uri, client, db = store
    spool_dir = tmp_path / "spool"
    cfg = tracking_config(tmp_path, tracking_uri=uri, experiment="mid-run", retry_s=3600)
    tracker = make_tracker(cfg)
    run_id = tracker.start("mid-run")
    tracker.log_metrics({"loss": 1.0}, step=0)
    with locked(db):
        t0 = time.monotonic()
        for step in range(1, 4):
            tracker.log_metrics({"loss": 1.0 + step}, step=step)
        elapsed = time.monotonic() - t0
        assert tracker.spool is not None
    # The first call waits out the busy timeout (MLflow's 20 s, cut to 5), the next ones go straight to
    # the spool (no retry for an hour).
    assert elapsed < 15, f"{elapsed:.1f} s"
    tracker.end()  # the end makes a last attempt at once: the store is back, the spool is replayed
    assert _spools(spool_dir) == []
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert _history(client, run_id, "loss") == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]


def test_parent_run_lookup_does_not_wait_on_a_locked_store(store, tmp_path: Path) -> None:
    uri, _, db = store
    cfg = tracking_config(tmp_path, tracking_uri=uri, experiment="parent")
    with locked(db):
        t0 = time.monotonic()
        assert parent_run_id(cfg, "invocation-1") is None
        assert time.monotonic() - t0 < 3
    assert parent_run_id(cfg, "invocation-1") is not None


def test_config_errors_still_raise_at_start(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    for bad in ("http://", "http://host:port", "sqlite://"):
        with pytest.raises(ValueError, match="tracking_uri"):
            make_tracker(tracking_config(tmp_path, tracking_uri=bad))
    with pytest.raises(Exception, match="foo://x"):  # MLflow's own error for an unknown scheme
        make_tracker(tracking_config(tmp_path, tracking_uri="foo://x"))
    assert not spool_dir.exists()


def test_unreachable_server_spools_and_the_command_replays_elsewhere(
    store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri, client, _ = store
    spool_dir = tmp_path / "spool"
    dead = f"http://127.0.0.1:{_closed_port()}"
    cfg = tracking_config(tmp_path, tracking_uri=dead, experiment="server-down", retry_s=0)
    t0 = time.monotonic()
    tracker = make_tracker(cfg)
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking.spool"), tracker.run("train-x") as run_id:
        tracker.log_params({"lr": 0.1})
        for step in range(3):
            tracker.log_metrics({"reward/mean": step / 2}, step=step)
    assert time.monotonic() - t0 < 20
    [spool] = _spools(spool_dir)
    assert str(spool) in caplog.text and "python -m cli.replay" in caplog.text

    done = _replay_cli("--uri", uri, str(spool))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replayed 6 ops" in done.stdout and not spool.exists()
    [run] = _runs_of(client, "server-down", run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
    assert _history(client, run.info.run_id, "reward/mean") == [(0, 0.0), (1, 0.5), (2, 1.0)]


class _Unavailable(BaseHTTPRequestHandler):
    """A server that is up (/health answers) but whose API fails with 503, like a server whose db is down."""

    def _answer(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_failing_server_costs_no_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = tracking_config(tmp_path, tracking_uri=uri, retry_s=3600)
        t0 = time.monotonic()
        tracker = make_tracker(cfg)
        run_id = tracker.start("r")  # the probe passes, the call fails: MLflow would retry 503s for minutes
        tracker.log_metrics({"loss": 1.0}, step=0)
        elapsed = time.monotonic() - t0
        spool = tracker.spool
        tracker.end()
    finally:
        server.shutdown()
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert run_id is not None and run_id.startswith("offline-") and spool is not None
    ops = [json.loads(line)["op"] for line in spool.read_text().splitlines()]
    assert ops == ["header", "start", "metrics", "end"]
    # the fast-fail settings were set for our calls only
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_torn_line_ignored_and_a_killed_replay_duplicates_nothing(store, tmp_path: Path) -> None:
    uri, client, _ = store
    spool_dir = tmp_path / "spool"
    dead = f"http://127.0.0.1:{_closed_port()}"
    tracker = make_tracker(tracking_config(tmp_path, tracking_uri=dead, experiment="killed"))
    with tracker.run("r") as run_id:
        for step in range(3):
            tracker.log_metrics({"loss": 3.0 - step}, step=step)
    [spool] = _spools(spool_dir)
    with spool.open("a") as f:
        f.write('{"op": "metrics", "run": "offl')  # a crash mid-append
    with spool.open("rb") as held:  # a spool still being written is left alone
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert replay_spool(spool, uri=uri).status == "busy"

    # Killed right after creating the run, before recording it: the rerun must find that run, not make one.
    killed = _replay_cli("--uri", uri, str(spool), fault="tracking_replay@0")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(_runs_of(client, "killed", run_id)) == 1
    # Killed after the first metrics op, before recording it: that op is sent twice.
    killed = _replay_cli("--uri", uri, str(spool), fault="tracking_replay@1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads(spool.with_suffix(".progress.json").read_text())["done"] == 1

    done = _replay_cli("--uri", uri, str(spool))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torn last line ignored" in done.stderr and not spool.exists()
    [run] = _runs_of(client, "killed", run_id)
    assert run.info.status == "FINISHED"
    assert _history(client, run.info.run_id, "loss") == [(0, 3.0), (1, 2.0), (2, 1.0)]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_training_finishes_with_the_store_locked(store, tmp_path: Path, monkeypatch, toy_prompts) -> None:
    uri, client, db = store
    monkeypatch.chdir(tmp_path)  # the spool goes to runs/tracking_spool under the working directory
    changes = {
        "model.cache_dir": str(tmp_path / "base"),
        "model.system_prompt": None,
        "algorithm.steps": 2,
        "algorithm.group_size": 2,
        "algorithm.prompts_per_step": 2,
        "algorithm.max_new_tokens": 6,
        "algorithm.micro_batch_size": 4,
        "algorithm.lr": 1e-6,  # the value this test was written with
        "trainer.output_dir": str(tmp_path / "out"),
        "tracking.tracking_uri": uri,
        "tracking.experiment": "train-locked",
        "tracking.spool_dir": "runs/tracking_spool",
        "tracking.retry_s": 0,
    }
    cfg = train_config("intuitor", overrides=changes)
    with locked(db):
        result = run_training(cfg, show_progress=False, prompts=toy_prompts)
        [spool] = _spools(tmp_path / "runs" / "tracking_spool")
    # the stage's own outputs are complete
    assert [m["step"] for m in result.history] == [0, 1]
    assert result.final_model is not None and (result.final_model / "config.json").exists()
    assert result.run_id is not None and result.run_id.startswith("offline-")

    # The next tracker on this store replays the spool before starting its own run.
    with make_tracker(cfg.tracking).run("next"):
        pass
    assert not spool.exists()
    [run] = _runs_of(client, "train-locked", result.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "train-intuitor"
    assert run.data.params["algorithm.steps"] == "2"
    keys = [k for k in result.history[0] if k != "step"]
    assert keys
    for key in keys:
        logged = client.get_metric_history(run.info.run_id, sanitize_key(key))
        assert [m.step for m in sorted(logged, key=lambda m: m.step)] == [0, 1], key
        for m in logged:
            assert _same(m.value, float(result.history[m.step][key])), key
