"""Tracking that survives a store outage: calls are spooled to a local file and replayed into MLflow later.

`SpoolingTracker` (what `make_tracker` returns for the mlflow backend) sends each call to the store
while it answers. The first call that fails with an outage (sqlite locked or unreadable, connection
refused, timeout, HTTP 503: `outage.is_outage`) turns it offline: that call and all later ones
are appended to a spool under `tracking.spool_dir` (format: `replay`). Offline, the store is
contacted at most every `tracking.retry_s` seconds and only after a probe that waits a second at most;
when it answers, the spool is replayed in order and the tracker is online again. `end` makes a last attempt; a
spool left then is replayed by the next tracker that starts on the same store and experiment, or by
`python -m cli.replay [--uri URI] [SPOOL ...]`.

Decisions:
- Run ids: a run that could not be created gets the id `offline-<hex>` from `start` (callers store it
  as they would a real id, e.g. metrics.json's mlflow_run_id); `run_id` gives the real id once the run
  exists. Every run created here carries the tag `pipeline.client_id = <hex>`, so
  tags.`pipeline.client_id` = '<hex>' finds it, and an `offline-` parent id is resolved that way too.
- Only outages are spooled: a malformed URI or an unknown scheme raises when the tracker is built or
  the run starts; other failed calls are dropped with a warning, as by MLflowTracker.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.config import TrackingConfig
from pipeline.tracking.base import (
    Tracker,
    check_end_status,
    check_table_file,
    flatten_params,
    numeric_metrics,
    run_tags,
    table_cell,
)
from pipeline.tracking.mlflow_store import anchor_store
from pipeline.tracking.outage import check_uri, connect, fast_fail, is_outage, store_reachable
from pipeline.tracking.replay import (
    CLIENT_ID_TAG,
    OFFLINE_PREFIX,
    SpoolWriter,
    anchor_dir,
    apply_op,
    now_ms,
    read_header,
    replay_spool,
)

_log = logging.getLogger(__name__)

REPLAY_COMMAND = "python -m cli.replay"


class SpoolingTracker(Tracker):
    """An MLflow tracker that spools its calls to a local file while the store is down (module docstring)."""

    def __init__(
        self, cfg: TrackingConfig, spool_dir: str | Path | None = None, retry_s: float | None = None
    ) -> None:
        self.cfg = cfg
        check_uri(cfg.tracking_uri)
        self.uri = anchor_store(cfg.tracking_uri)
        self.spool_dir = anchor_dir(cfg.spool_dir if spool_dir is None else spool_dir)
        self.retry_s = float(cfg.retry_s if retry_s is None else retry_s)
        self._inner = connect(cfg)  # an unknown scheme raises here, as MLflowTracker's constructor
        self._writer: SpoolWriter | None = None  # set while offline
        self._runs: dict[str, str] = {}  # offline id -> MLflow run id, once created
        self._run: str | None = None  # the active run: its MLflow id, or its offline id until created
        self._next_try = 0.0

    @property
    def run_id(self) -> str | None:
        return None if self._run is None else self._runs.get(self._run, self._run)

    @property
    def spool(self) -> Path | None:
        """The spool being written (None while online)."""
        return None if self._writer is None else self._writer.path

    def start(
        self, run_name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None
    ) -> str | None:
        if self._run is not None:
            raise RuntimeError(f"run {self.run_id} is still active; end it or use another tracker")
        self._replay_pending()
        client_id = uuid.uuid4().hex
        self._runs, self._run = {}, OFFLINE_PREFIX + client_id
        tags = {**run_tags(tags), CLIENT_ID_TAG: client_id}
        op = {"op": "start", "run": self._run, "name": run_name, "tags": tags, "parent": parent_run_id}
        if not store_reachable(self.uri):  # no MLflow call that would wait on a lock or a dead server
            self._go_offline("the probe found it locked or not answering")
        self._submit(op | {"time": now_ms()})
        self._run = self.run_id
        return self._run

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._run is not None:
            self._submit({"op": "params", "run": self._run, "params": flatten_params(params)})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        values = numeric_metrics(metrics) if self._run is not None else {}
        if values:
            op = {"op": "metrics", "run": self._run, "metrics": values, "step": int(step)}
            self._submit(op | {"time": now_ms()})

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        if self._run is not None:
            self._submit({"op": "dict", "run": self._run, "obj": obj, "file": artifact_file})

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        check_table_file(artifact_file)
        if self._run is not None and rows:
            cells = [{k: table_cell(v) for k, v in row.items()} for row in rows]  # JSON-safe when spooled
            self._submit({"op": "table", "run": self._run, "rows": cells, "file": artifact_file})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._run is not None:
            op = {"op": "artifact", "run": self._run, "path": str(path), "artifact_path": artifact_path}
            self._submit(op)

    def end(self, status: str = "FINISHED") -> None:
        check_end_status(status)
        if self._run is None:
            return
        run, self._run = self._run, None  # cleared first: a failing end must not repeat
        self._submit({"op": "end", "run": run, "status": status, "time": now_ms()}, retry_now=True)
        if self._writer is not None:
            path = self._writer.path
            self._writer.close()  # unlocked: the next tracker on this store, or the command, replays it
            self._writer = None
            _log.warning(
                "tracking: store %s still unreachable; run %s stays in %s. Replay it with `%s %s` "
                "(the next run on this store also replays it)",
                self.uri,
                run,
                path,
                REPLAY_COMMAND,
                path,
            )

    def _submit(self, op: dict[str, Any], retry_now: bool = False) -> None:
        if self._writer is None:
            try:
                if self._inner is None:
                    self._inner = connect(self.cfg)
                if self._inner is not None:
                    with fast_fail(self.uri):
                        apply_op(self._inner, op, self._runs, None)
                    return
                reason: Exception | str = "the probe found it locked or not answering"
            except Exception as e:
                if not is_outage(e):
                    raise
                reason = e
            self._go_offline(reason)
        assert self._writer is not None
        self._writer.append(op)
        self._recover(retry_now)

    def _go_offline(self, reason: Exception | str) -> None:
        self._writer = SpoolWriter(self.spool_dir, self.uri, self.cfg.experiment)
        self._next_try = time.monotonic() + self.retry_s
        _log.warning(
            "tracking: store %s unreachable or locked (%s); training goes on, calls are spooled to %s "
            "and replayed when it is back (retrying every %g s)",
            self.uri,
            reason,
            self._writer.path,
            self.retry_s,
        )

    def _recover(self, now: bool) -> None:
        """Offline: at most every retry_s (or `now`), probe the store and replay the spool if it answers."""
        if self._writer is None or (not now and time.monotonic() < self._next_try):
            return
        self._next_try = time.monotonic() + self.retry_s
        if self._inner is None:
            self._inner = connect(self.cfg)
        if self._inner is None or not store_reachable(self.uri):
            return
        result = replay_spool(self._writer.path, tracker=self._inner, owned=True)
        self._runs.update(result.runs)
        if result.status == "done":
            self._writer.close()
            self._writer = None
            if self._run is not None:
                self._run = self.run_id  # later calls name the real run
            _log.warning("tracking: store %s is back; %s", self.uri, result.describe())

    def _replay_pending(self) -> None:
        """Spools an earlier run left on this store and experiment: replayed first, oldest first."""
        spools = sorted(self.spool_dir.glob("*.jsonl")) if self.spool_dir.is_dir() else []
        for path in spools:
            header = read_header(path)
            if header is None or (header.get("uri"), header.get("experiment")) != (
                self.uri,
                self.cfg.experiment,
            ):
                continue
            if self._inner is None:
                self._inner = connect(self.cfg)
            if self._inner is None or not store_reachable(self.uri):
                return
            result = replay_spool(path, tracker=self._inner)
            if result.status == "pending":
                return  # down again: the rest waits too, order is kept
            if result.status == "done":
                _log.info("tracking: %s", result.describe())
