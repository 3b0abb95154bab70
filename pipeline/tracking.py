"""Experiment tracking behind one small interface: MLflow (local sqlite store by default) or nothing.

Design choices:
- Only `start` (a bad URI should stop a run before any model loads) and caller bugs (an unknown end
  status, a table file that is not .json/.parquet) raise. Every logging call is best effort: a failure
  is logged as a warning and dropped, so telemetry never kills training.
- Non-finite metric values are logged as they are. A NaN loss is exactly what one wants to see in the
  UI; MLflow's sqlite store keeps NaN faithfully and stores +-inf as +-1.797e308 (float max).
- The MLflow implementation talks to an explicit `MlflowClient`: no fluent-API active run, no
  `mlflow.set_tracking_uri`, no MLFLOW_RUN_ID, so trackers in one process never see each other's state.
- mlflow is imported inside `MLflowTracker` only: importing this module costs nothing.
- For the mlflow backend `make_tracker` returns `tracking_spool.SpoolingTracker`, which wraps
  `MLflowTracker`: while the store is unreachable or locked, calls are spooled to a local file and
  replayed when it is back (see that module).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.config import TrackingConfig

_log = logging.getLogger(__name__)

# MLflow limits (mlflow.utils.validation): longer values are rejected, not truncated.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_END_STATUSES = ("FINISHED", "FAILED", "KILLED")

_DISALLOWED = re.compile(r"[^A-Za-z0-9_\-. :/]")


def sanitize_key(key: str) -> str:
    """Make `key` a valid MLflow metric/param name: `pass@1` -> `pass_at_1`, other bad chars -> `_`.

    MLflow also rejects names that change under posix path normalisation ("a//b", "/a", "a/./b",
    "../a"), because it may store them as files; such segments are dropped or replaced.
    """
    key = _DISALLOWED.sub("_", str(key).replace("@", "_at_"))
    parts = ["__" if p == ".." else p for p in key.split("/") if p not in ("", ".")]
    return "/".join(parts)[:MAX_KEY_LENGTH].rstrip("/") or "_"


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings -> {"a.b.c": "value"}, keys sanitized, values stringified and truncated."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name))
        else:
            flat[sanitize_key(name)] = str(value)[:MAX_PARAM_VALUE_LENGTH]
    return flat


def git_sha(cwd: str | Path | None = None) -> str | None:
    """HEAD commit of the git repo containing `cwd`, or None (no git, not a repo, no commit yet)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _check_table_file(artifact_file: str) -> None:
    # Checked in every tracker (NullTracker included) so tests without MLflow catch a bad name too.
    if not artifact_file.endswith((".json", ".parquet")):
        raise ValueError(f"table artifact must end in .json or .parquet, got {artifact_file!r}")


@contextlib.contextmanager
def _best_effort(what: str, reraise: Callable[[Exception], bool] | None = None) -> Iterator[None]:
    """Drop a failed call with a warning, except errors `reraise` claims (the spooling wrapper's outages)."""
    try:
        yield
    except Exception as e:  # telemetry must never stop training
        if reraise is not None and reraise(e):
            raise
        _log.warning("tracking: %s failed, dropped: %s: %s", what, type(e).__name__, e)


def run_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """`tags` as strings, plus the git commit of the working directory (shown by the MLflow UI)."""
    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    sha = git_sha()
    if sha:
        all_tags["git_sha"] = sha
        all_tags.setdefault("mlflow.source.git.commit", sha)
    return all_tags


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Sanitized keys -> float values (0-d tensors and numpy scalars too); non-numbers are dropped."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            out[sanitize_key(key)] = float(value)
        except (TypeError, ValueError):
            _log.warning("tracking: metric %r has non-numeric value %r, dropped", key, value)
    return out


class Tracker(ABC):
    """One run at a time per tracker; use a second tracker for a child run (`parent_run_id`)."""

    @property
    @abstractmethod
    def run_id(self) -> str | None: ...

    @abstractmethod
    def start(
        self, run_name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None
    ) -> str | None: ...

    @abstractmethod
    def log_params(self, params: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    @abstractmethod
    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """`obj` as YAML (".yaml"/".yml") or JSON (anything else) under `artifact_file`."""

    @abstractmethod
    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        """Rows as an MLflow table (.json/.parquet); logging to an existing file appends the rows."""

    @abstractmethod
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    @abstractmethod
    def end(self, status: str = "FINISHED") -> None:
        """FINISHED, FAILED or KILLED; a second call, or one without a run, does nothing."""

    @contextlib.contextmanager
    def run(
        self, run_name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None
    ) -> Iterator[str | None]:
        """`with tracker.run("name") as run_id:` ends the run FAILED/KILLED if the body raises."""
        run_id = self.start(run_name, tags=tags, parent_run_id=parent_run_id)
        try:
            yield run_id
        except KeyboardInterrupt:
            self.end("KILLED")
            raise
        except BaseException:
            self.end("FAILED")
            raise
        self.end("FINISHED")


class NullTracker(Tracker):
    """Logs nothing (tests, `tracking.backend: null`)."""

    @property
    def run_id(self) -> str | None:
        return None

    def start(
        self, run_name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None
    ) -> str | None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        pass

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        _check_table_file(artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


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

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        name = self.cfg.experiment
        exp = self._client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self._client.create_experiment(
                    name,
                    artifact_location=_sqlite_artifact_location(anchor_store(self.cfg.tracking_uri), name),
                )
            except MlflowException:  # another process created it in between
                exp = self._client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":  # a deleted name still blocks creation: bring it back
            self._client.restore_experiment(exp.experiment_id)
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
                    with _best_effort(f"log_params({param.key})", self._reraise):
                        self._client.log_batch(self._run_id, params=[param])

    def log_metrics(self, metrics: Mapping[str, float], step: int, timestamp_ms: int | None = None) -> None:
        """`timestamp_ms`: when the values were measured (a replay keeps the original time); default now."""
        from mlflow.entities import Metric

        if self._run_id is None:
            return
        now = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        batch = [Metric(k, v, now, int(step)) for k, v in numeric_metrics(metrics).items()]
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            with _best_effort("log_metrics", self._reraise):
                self._client.log_batch(self._run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH])

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        if self._run_id is not None:
            with _best_effort(f"log_dict({artifact_file})", self._reraise):
                self._client.log_dict(self._run_id, obj, artifact_file)

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        _check_table_file(artifact_file)
        if self._run_id is None or not rows:
            return
        # Column dict (MLflow builds the DataFrame); rows may miss keys, odd values become strings.
        columns = list(dict.fromkeys(k for row in rows for k in row))
        data = {c: [_cell(row.get(c)) for row in rows] for c in columns}
        with _best_effort(f"log_table({artifact_file})", self._reraise), warnings.catch_warnings():
            # mlflow 3.17's select_dtypes(include=["object"]) warns under pandas 3 on every call: noise.
            warnings.filterwarnings("ignore", message=".*select_dtypes.*")
            self._client.log_table(self._run_id, data, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._run_id is not None:
            with _best_effort(f"log_artifact({path})", self._reraise):
                self._client.log_artifact(self._run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if status not in _END_STATUSES:  # checked first: a typo must not leave the run RUNNING
            raise ValueError(f"status must be one of {_END_STATUSES}, got {status!r}")
        if self._run_id is None:
            return
        run_id, self._run_id = self._run_id, None  # cleared first: a failing end must not repeat
        with _best_effort("end", self._reraise):
            self._client.set_terminated(run_id, status=status)


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


# Where `dvc exp run --queue/--temp` executes: a scratch copy inside the project.
_DVC_TEMP_WORKSPACE = "/.dvc/tmp/exps/"


def anchor_store(uri: str, root: str | Path | None = None) -> str:
    """Make a relative `sqlite:///file.db` absolute against the project root.

    Queued DVC experiments run in a scratch copy under .dvc/tmp/exps/ and Hydra jobs in their own
    folders; without this each would log into a store of its own that nobody opens.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix) :].startswith("/"):
        return uri
    base = str(root) if root is not None else os.getcwd()
    if _DVC_TEMP_WORKSPACE in base:
        base = base.split(_DVC_TEMP_WORKSPACE, 1)[0]
    return prefix + str(Path(base) / uri[len(prefix) :])


def invocation_name() -> str:
    """Name of this pipeline invocation: the DVC experiment, else the git commit (one parent run each)."""
    return os.environ.get("DVC_EXP_NAME") or f"repro-{(git_sha() or 'nogit')[:10]}"


def parent_run_id(cfg: TrackingConfig, invocation: str, tags: Mapping[str, str] | None = None) -> str | None:
    """The parent run of `invocation`, created (and closed: children attach later) if it is new.

    Stages run as separate processes, so the parent is found by tag, not passed around. Returns None
    for the null backend or when the store cannot be reached or is locked (stages then log unparented
    runs): a cheap probe first, then MLflow set to fail fast, so an outage costs seconds at most.
    """
    if cfg.backend != "mlflow":
        return None
    from pipeline.tracking_outage import fast_fail, is_outage, store_reachable  # it imports this module

    uri = anchor_store(cfg.tracking_uri)
    with fast_fail(uri):
        try:
            if not store_reachable(uri):
                raise ConnectionError("the probe found it locked or not answering")
            tracker = MLflowTracker(cfg)
        except Exception as e:
            if not is_outage(e):  # a bad URI is a config error
                raise
            _log.warning("tracking: store %s unreachable (%s); this stage's run gets no parent", uri, e)
            return None
        with _best_effort("finding the parent run"):
            exp_id = tracker._experiment_id()
            query = f"tags.`pipeline.invocation` = '{invocation}' and tags.`pipeline.role` = 'parent'"
            found = tracker._client.search_runs([exp_id], filter_string=query, max_results=1)
            if found:
                return found[0].info.run_id
            all_tags = {**(tags or {}), "pipeline.invocation": invocation, "pipeline.role": "parent"}
            if sha := git_sha():
                all_tags["git_sha"] = sha
            run = tracker._client.create_run(exp_id, run_name=invocation, tags=all_tags)
            tracker._client.set_terminated(run.info.run_id, "FINISHED")
            return run.info.run_id
    return None


def make_tracker(cfg: TrackingConfig) -> Tracker:
    if cfg.backend == "null":
        return NullTracker()
    if cfg.backend == "mlflow":
        from pipeline.tracking_spool import SpoolingTracker  # it imports this module

        return SpoolingTracker(cfg)
    raise ValueError(f"unknown tracking backend {cfg.backend!r}")
