"""The MLflow tracker, and where its store is.

- It talks to an explicit `MlflowClient`: no fluent-API active run, no `mlflow.set_tracking_uri`, no
  MLFLOW_RUN_ID, so trackers in one process never see each other's state.
- mlflow is imported inside `MLflowTracker` only: importing this module costs nothing.
- Non-finite metric values are logged as they are. A NaN loss is exactly what one wants to see in the
  UI; MLflow's sqlite store keeps NaN faithfully and stores +-inf as +-1.797e308 (float max).
- A relative sqlite store is anchored at the project root (`anchor_store`), also from DVC's scratch
  workspaces and Hydra's job folders.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.config import TrackingConfig
from pipeline.tracking.base import (
    Tracker,
    best_effort,
    check_end_status,
    check_table_file,
    flatten_params,
    numeric_metrics,
    run_tags,
    table_cell,
)

# MLflow's batch limits (mlflow.utils.validation).
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
# Where `dvc exp run --queue/--temp` executes: a scratch copy inside the project.
DVC_TEMP_WORKSPACE = "/.dvc/tmp/exps/"
# MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and for runs that log
# tables it lands on the GenAI overview; a training experiment opens on its runs and their charts.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def _sqlite_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Artifacts of a new experiment go next to its sqlite file, not to ./mlruns of whatever the cwd is.

    (MLflow's default for a sqlite store is `./mlruns/<id>` relative to the cwd at creation time, which
    scatters artifacts when the db path is absolute or tests use a temporary store.)
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
    if not db or db == ":memory:":
        return None
    folder = re.sub(r"[^A-Za-z0-9_.-]", "_", experiment)
    return (Path(db).resolve().parent / "mlruns" / folder).as_uri()


class MLflowTracker(Tracker):
    def __init__(self, cfg: TrackingConfig, reraise: Callable[[Exception], bool] | None = None) -> None:
        """`reraise`: failed calls it returns True for propagate instead of being dropped."""
        import mlflow  # lazy: mlflow takes seconds to import

        self.cfg = cfg
        self._client = mlflow.MlflowClient(tracking_uri=anchor_store(cfg.tracking_uri))
        self._run_id: str | None = None
        self._reraise = reraise

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def attach(self, run_id: str | None) -> None:
        """Log the next calls into the existing run `run_id` (None: into no run)."""
        self._run_id = run_id

    def experiment_id(self) -> str:
        """The id of `cfg.experiment`, created (or restored from deleted) on first use."""
        return self._experiment_id()

    def find_run(self, filter_string: str) -> str | None:
        """The id of the first run of this experiment that `filter_string` (MLflow search syntax) matches."""
        found = self._client.search_runs([self._experiment_id()], filter_string=filter_string, max_results=1)
        return found[0].info.run_id if found else None

    def create_run(self, run_name: str, tags: Mapping[str, str], start_time: int | None = None) -> str:
        """A new run of this experiment with exactly `tags` (not attached: logging calls need `attach`)."""
        run = self._client.create_run(
            self._experiment_id(), start_time=start_time, tags=dict(tags), run_name=run_name
        )
        return run.info.run_id

    def set_terminated(self, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> None:
        """Mark the run `run_id` ended (it need not be attached)."""
        self._client.set_terminated(run_id, status=status, end_time=end_time)

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        name = self.cfg.experiment
        exp = self._client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self._client.create_experiment(
                    name,
                    artifact_location=_sqlite_artifact_location(anchor_store(self.cfg.tracking_uri), name),
                    tags=dict([EXPERIMENT_KIND]),
                )
            except MlflowException:  # another process created it in between
                exp = self._client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":  # a deleted name still blocks creation: bring it back
            self._client.restore_experiment(exp.experiment_id)
        if EXPERIMENT_KIND[0] not in exp.tags:  # made by an older version, or by hand: tag it once
            self._client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
        return exp.experiment_id

    def start(
        self, run_name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None
    ) -> str | None:
        if self._run_id is not None:
            raise RuntimeError(f"run {self._run_id} is still active; end it or use another tracker")
        all_tags = run_tags(tags)
        if parent_run_id:
            # The tag is all MLflow uses to nest runs; MLFLOW_RUN_ID would hijack the fluent API instead.
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self._client.create_run(self._experiment_id(), tags=all_tags, run_name=run_name)
        self._run_id = run.info.run_id
        return self._run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        if self._run_id is None:
            return
        items = [Param(k, v) for k, v in flatten_params(params).items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            chunk = items[i : i + _MAX_PARAMS_PER_BATCH]
            try:
                self._client.log_batch(self._run_id, params=chunk)
            except Exception as e:
                if self._reraise is not None and self._reraise(e):
                    raise
                # MLflow rejects a whole batch when one key was logged before with another value (e.g.
                # on resume); one by one, only the conflicting keys are dropped.
                for param in chunk:
                    with best_effort(f"log_params({param.key})", self._reraise):
                        self._client.log_batch(self._run_id, params=[param])

    def log_metrics(self, metrics: Mapping[str, float], step: int, timestamp_ms: int | None = None) -> None:
        """`timestamp_ms`: when the values were measured (a replay keeps the original time); default now."""
        from mlflow.entities import Metric

        if self._run_id is None:
            return
        now = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        batch = [Metric(k, v, now, int(step)) for k, v in numeric_metrics(metrics).items()]
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            with best_effort("log_metrics", self._reraise):
                self._client.log_batch(self._run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH])

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        if self._run_id is not None:
            with best_effort(f"log_dict({artifact_file})", self._reraise):
                self._client.log_dict(self._run_id, obj, artifact_file)

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        check_table_file(artifact_file)
        if self._run_id is None or not rows:
            return
        # Column dict (MLflow builds the DataFrame); rows may miss keys, odd values become strings.
        columns = list(dict.fromkeys(k for row in rows for k in row))
        data = {c: [table_cell(row.get(c)) for row in rows] for c in columns}
        with best_effort(f"log_table({artifact_file})", self._reraise), warnings.catch_warnings():
            # mlflow 3.17's select_dtypes(include=["object"]) warns under pandas 3 on every call: noise.
            warnings.filterwarnings("ignore", message=".*select_dtypes.*")
            self._client.log_table(self._run_id, data, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._run_id is not None:
            with best_effort(f"log_artifact({path})", self._reraise):
                self._client.log_artifact(self._run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        check_end_status(status)
        if self._run_id is None:
            return
        run_id, self._run_id = self._run_id, None  # cleared first: a failing end must not repeat
        with best_effort("end", self._reraise):
            self._client.set_terminated(run_id, status=status)


def anchor_store(uri: str, root: str | Path | None = None) -> str:
    """Make a relative `sqlite:///file.db` absolute against the project root.

    Queued DVC experiments run in a scratch copy under .dvc/tmp/exps/ and Hydra jobs in their own
    folders; without this each would log into a store of its own that nobody opens.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix) :].startswith("/"):
        return uri
    base = str(root) if root is not None else os.getcwd()
    if DVC_TEMP_WORKSPACE in base:
        base = base.split(DVC_TEMP_WORKSPACE, 1)[0]
    return prefix + str(Path(base) / uri[len(prefix) :])
