"""The spool file of tracking calls made during a store outage, and its replay into MLflow.

A spool is `<spool_dir>/<time>-<pid>-<random>.jsonl`: a header line naming the store and experiment,
then one JSON op per line (start, params, metrics, dict, table, artifact, end), each with a sequence
number, flushed and fsync'd per line; a torn last line from a crash is ignored on read. Artifact files
are copied into `<spool>.files/`, as the original may be gone by replay time. The writer holds the file
flock'ed, so a replay in another process skips a spool still being written.

Replay is idempotent enough to be interrupted anywhere: after each op, progress (ops done, offline id ->
run id) is saved to `<spool>.progress.json`. A crash between an op and its record re-applies that one op
next time: `start` first looks its run up by the `pipeline.client_id` tag (no second run), metrics keep
their original timestamps (MLflow drops exact duplicates), params, dicts, artifacts and `end` overwrite;
only a re-applied table op could append its rows twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.config import TrackingConfig
from pipeline.faults import fault_point
from pipeline.tracking.base import best_effort
from pipeline.tracking.mlflow_store import DVC_TEMP_WORKSPACE, MLflowTracker, anchor_store
from pipeline.tracking.outage import connect, fast_fail, is_outage

_log = logging.getLogger(__name__)

CLIENT_ID_TAG = "pipeline.client_id"
OFFLINE_PREFIX = "offline-"


def now_ms() -> int:
    return int(time.time() * 1000)


def anchor_dir(folder: str | Path) -> Path:
    # Like anchor_store: a queued DVC experiment's scratch copy is deleted, its spool must not be.
    folder = Path(folder)
    if folder.is_absolute():
        return folder
    base = os.getcwd()
    return Path(base.split(DVC_TEMP_WORKSPACE, 1)[0] if DVC_TEMP_WORKSPACE in base else base) / folder


def _flock(file: IO[Any], wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no protection against two replays at once
        return True
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def _progress_file(spool: Path) -> Path:
    return spool.with_suffix(".progress.json")


def _files_dir(spool: Path) -> Path:
    return spool.with_suffix(".files")


class SpoolWriter:
    """Appends ops to a new spool file, which it holds flock'ed until `close`."""

    def __init__(self, folder: Path, uri: str, experiment: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = folder / f".{stem}.tmp"
        self._file = open(tmp, "a", encoding="utf-8")  # noqa: SIM115 (open until close())
        _flock(self._file, wait=True)
        self._seq = 0
        self._write({"op": "header", "version": 1, "uri": uri, "experiment": experiment, "time": now_ms()})
        self.path = folder / f"{stem}.jsonl"
        os.replace(tmp, self.path)  # visible to replays only now, already locked and with its header

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, op: Mapping[str, Any]) -> None:
        if op["op"] == "artifact":  # the file may be gone or changed by replay time: keep a copy
            src = Path(op["path"])
            dest = _files_dir(self.path) / str(self._seq) / src.name
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
            except OSError as e:
                _log.warning("tracking: log_artifact(%s) failed, dropped: %s", src, e)
                return
            op = {k: v for k, v in op.items() if k != "path"} | {"file": f"{self._seq}/{src.name}"}
        self._write({**op, "seq": self._seq})
        self._seq += 1

    def close(self) -> None:
        self._file.close()  # releases the lock


def read_spool(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the ops of a spool; a torn last line (a crash mid-append) is ignored."""
    lines = path.read_bytes().split(b"\n")
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            where = "torn last line" if i == len(lines) - 1 else f"unreadable line {i + 1}"
            _log.warning("tracking spool %s: %s ignored", path, where)
    if not records or records[0].get("op") != "header":
        raise ValueError(f"{path} is not a tracking spool (no header line)")
    return records[0], records[1:]


def read_header(path: Path) -> dict[str, Any] | None:
    """The header line of a spool (store, experiment), None if `path` is not a readable spool."""
    try:
        with open(path, encoding="utf-8") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) and header.get("op") == "header" else None


@dataclass
class ReplayResult:
    path: Path
    # done (all replayed, spool deleted), pending (store down: kept), busy (being written),
    # gone (another process replayed it meanwhile), invalid (not a spool)
    status: str
    applied: int = 0
    total: int = 0
    runs: dict[str, str] = field(default_factory=dict)  # local id -> MLflow run id
    uri: str = ""

    def describe(self) -> str:
        runs = ", ".join(f"{k} -> {v}" for k, v in self.runs.items())
        return {
            "done": f"{self.path}: replayed {self.applied} ops into {self.uri} ({runs or 'no new runs'}); "
            "spool deleted",
            "pending": f"{self.path}: store {self.uri} unreachable, kept ({self.total - self.applied} of "
            f"{self.total} ops still to replay)",
            "busy": f"{self.path}: being written by a running process, skipped",
            "gone": f"{self.path}: already replayed by another process",
            "invalid": f"{self.path}: not a tracking spool, skipped",
        }[self.status]


def _resolve(tracker: MLflowTracker, run: str | None, runs: dict[str, str]) -> str | None:
    """A real run id for `run`: as is, or an offline id mapped here or found in the store by its tag."""
    if not run or not run.startswith(OFFLINE_PREFIX):
        return run
    if run not in runs:
        found = tracker.find_run(f"tags.`{CLIENT_ID_TAG}` = '{run[len(OFFLINE_PREFIX) :]}'")
        if found is None:
            return None
        runs[run] = found
    return runs[run]


def apply_op(tracker: MLflowTracker, op: Mapping[str, Any], runs: dict[str, str], files: Path | None) -> None:
    """Send one op to the store. Raises outages, and errors of `start`; drops other failures."""
    kind = op["op"]
    if kind == "start":
        # files is None for a live call: that run cannot exist yet, no need to look for it
        if op["run"] in runs or (files is not None and _resolve(tracker, op["run"], runs)):
            return
        tags = dict(op["tags"])
        parent = _resolve(tracker, op.get("parent"), runs)
        if parent:  # the tag is all MLflow uses to nest runs
            tags["mlflow.parentRunId"] = parent
        elif op.get("parent"):
            _log.warning(
                "tracking: parent run %s not found; run %s logged without it", op["parent"], op["run"]
            )
        runs[op["run"]] = tracker.create_run(op["name"], tags, start_time=op["time"])
        return
    run_id = _resolve(tracker, op["run"], runs)
    if run_id is None:
        _log.warning("tracking: %s for run %s (never created) dropped", kind, op["run"])
        return
    tracker.attach(run_id)
    try:
        if kind == "params":
            tracker.log_params(op["params"])
        elif kind == "metrics":
            tracker.log_metrics(op["metrics"], op["step"], timestamp_ms=op["time"])
        elif kind == "dict":
            tracker.log_dict(op["obj"], op["file"])
        elif kind == "table":
            tracker.log_table(op["rows"], op["file"])
        elif kind == "artifact":
            path = op["path"] if "path" in op else (files or Path()) / op["file"]
            tracker.log_artifact(path, op.get("artifact_path"))
        elif kind == "end":
            with best_effort("end", is_outage):
                tracker.set_terminated(run_id, status=op["status"], end_time=op["time"])
        else:
            _log.warning("tracking: unknown spooled op %r dropped", kind)
    finally:
        tracker.attach(None)


def replay_spool(
    path: Path, uri: str | None = None, tracker: MLflowTracker | None = None, owned: bool = False
) -> ReplayResult:
    """Replay the ops of `path` not replayed yet into `tracker`, else into `uri` or the spool's own store
    (the spool names its experiment); all replayed: the spool is deleted. `owned`: the caller writes it."""
    path = Path(path)
    try:
        handle = None if owned else open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return ReplayResult(path, "gone")
    try:
        if handle is not None:
            if not _flock(handle, wait=False):
                return ReplayResult(path, "busy")
            # Locked only after another replay finished and deleted it: the inode is no longer the path's.
            if not path.exists() or os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                return ReplayResult(path, "gone")
        return _replay(path, uri, tracker)
    finally:
        if handle is not None:
            handle.close()


def _replay(path: Path, uri: str | None, tracker: MLflowTracker | None) -> ReplayResult:
    try:
        header, ops = read_spool(path)
    except (OSError, ValueError) as e:
        _log.warning("tracking: %s", e)
        return ReplayResult(path, "invalid")
    target = anchor_store(uri or (tracker.cfg.tracking_uri if tracker else header["uri"]))
    progress_file = _progress_file(path)
    progress = json.loads(progress_file.read_text()) if progress_file.exists() else {"done": 0, "runs": {}}
    runs: dict[str, str] = progress["runs"]
    todo = [op for op in ops if op.get("seq", -1) >= progress["done"]]
    result = ReplayResult(path, "pending", len(ops) - len(todo), len(ops), runs, target)
    if todo and tracker is None:
        # A direct store connection: replay never spools again, so spool_dir and retry_s are unused.
        target_cfg = TrackingConfig(
            backend="mlflow",
            tracking_uri=target,
            experiment=header["experiment"],
            spool_dir=str(path.parent),
            retry_s=0.0,
        )
        tracker = connect(target_cfg)
        if tracker is None:
            return result
    with fast_fail(target):
        for op in todo:
            try:
                apply_op(tracker, op, runs, _files_dir(path))  # type: ignore[arg-type]
            except Exception as e:
                if is_outage(e):
                    return result
                _log.warning("tracking: replaying %s op %s failed, dropped: %s", op["op"], op["seq"], e)
            fault_point("tracking_replay", op["seq"])  # tests: a crash between an op and its record
            tmp = progress_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"done": op["seq"] + 1, "runs": runs}))
            os.replace(tmp, progress_file)
            result.applied += 1
    for leftover in (path, progress_file):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(_files_dir(path), ignore_errors=True)
    result.status = "done"
    return result
