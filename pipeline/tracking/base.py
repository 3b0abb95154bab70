"""The tracking interface every stage logs through, the no-op tracker, and what all trackers share.

Only `start` (a bad URI should stop a run before any model loads) and caller bugs (an unknown end
status, a table file that is not .json/.parquet) raise. Every logging call is best effort: a failure is
logged as a warning and dropped (`best_effort`), so telemetry never kills training.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

# MLflow limits (mlflow.utils.validation): longer values are rejected, not truncated.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
END_STATUSES = ("FINISHED", "FAILED", "KILLED")

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


def check_end_status(status: str) -> None:
    # Checked before anything else in `end`: a typo must not leave the run RUNNING.
    if status not in END_STATUSES:
        raise ValueError(f"status must be one of {END_STATUSES}, got {status!r}")


def check_table_file(artifact_file: str) -> None:
    # Checked in every tracker (NullTracker included) so tests without MLflow catch a bad name too.
    if not artifact_file.endswith((".json", ".parquet")):
        raise ValueError(f"table artifact must end in .json or .parquet, got {artifact_file!r}")


@contextlib.contextmanager
def best_effort(what: str, reraise: Callable[[Exception], bool] | None = None) -> Iterator[None]:
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
        check_table_file(artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


def table_cell(value: Any) -> Any:
    """A table cell as MLflow (and the JSON spool) can store it: scalars as they are, the rest as text."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)
