"""Telling a tracking-store outage from a bad call, and failing fast while the store is down.

Used by the spooling tracker (`spool`) and `runs.parent_run_id`; nothing here imports MLflow.
- `is_outage`: the store is down or busy (sqlite locked or unreadable, connection refused, timeout, HTTP
  503), so the call is worth repeating later; anything else is the call's own fault.
- `store_reachable`: a probe that waits at most a second (sqlite: take the write lock; http:
  GET /health), used before contacting a store believed down.
- `fast_fail`: around our calls MLflow's HTTP client gets no retries and a 10 s timeout (env vars set only
  for the block, unless the user set them), and MLflow's sqlite busy timeout drops from 20 s to 5 s.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.config import TrackingConfig
from pipeline.tracking.mlflow_store import MLflowTracker, anchor_store

_SQLITE_BUSY_MS = 5000
_FAST_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_OUTAGE_CODES = {"TEMPORARILY_UNAVAILABLE", "SERVICE_UNDER_MAINTENANCE", "DEADLINE_EXCEEDED"}
_fast_sqlite_dbs: set[str] = set()  # db paths whose MLflow busy timeout is shortened


def is_outage(error: BaseException) -> bool:
    """Whether `error` (or what caused it) says the store is down or busy, not that the call was bad."""
    types: list[type[BaseException]] = [sqlite3.OperationalError, ConnectionError, TimeoutError]
    # Only modules already imported: an exception of a module nobody imported cannot have been raised.
    if exc := sys.modules.get("sqlalchemy.exc"):
        types += [exc.OperationalError, exc.DisconnectionError, exc.TimeoutError]
    if exc := sys.modules.get("requests.exceptions"):
        types += [exc.ConnectionError, exc.Timeout]
    if exc := sys.modules.get("urllib3.exceptions"):
        types += [exc.MaxRetryError, exc.NewConnectionError, exc.ProtocolError, exc.TimeoutError]
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, tuple(types)) or getattr(e, "error_code", None) in _OUTAGE_CODES:
            return True
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return False


def _sqlite_path(uri: str) -> str | None:
    return uri[len("sqlite:///") :].split("?", 1)[0] if uri.startswith("sqlite:///") else None


def check_uri(uri: str) -> None:
    """Raise ValueError for a URI that can never work: a config error is not an outage to wait out."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        if not parsed.hostname:
            raise ValueError(f"tracking_uri {uri!r} has no host")
        try:
            _ = parsed.port
        except ValueError as e:
            raise ValueError(f"tracking_uri {uri!r}: {e}") from None
    elif _sqlite_path(uri) == "" or (uri.startswith("sqlite:") and _sqlite_path(uri) is None):
        raise ValueError(f"tracking_uri {uri!r}: expected sqlite:///relative.db or sqlite:////abs/path.db")


def store_reachable(uri: str, timeout_s: float = 2.0) -> bool:
    """A cheap look at the store without MLflow, waiting at most a second on a lock."""
    db = _sqlite_path(uri)
    if db is not None:
        if db == ":memory:" or not Path(db).exists():
            return True  # nothing to lock yet: MLflow creates it
        try:
            # A second at most: another writer (a parallel sweep job) holds the lock for milliseconds;
            # a store that stays locked costs one second per probe.
            con = sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=rw", uri=True, timeout=1.0)
        except sqlite3.Error:
            return False
        try:
            con.isolation_level = None
            con.execute("BEGIN IMMEDIATE")  # the write lock, or an error if it stays held
            con.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False
        finally:
            con.close()
    if urlparse(uri).scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
                return True
        except urllib.error.HTTPError as e:
            return e.code < 500  # it answered (a proxy without /health too); 5xx: the service is down
        except (OSError, ValueError):
            return False
    return True  # no cheap probe for other stores: the real call decides


def _busy_timeout(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
    # MLflow runs "PRAGMA busy_timeout = 20000" in every session: 20 s per call on a locked store.
    if statement.startswith("PRAGMA busy_timeout") and conn.engine.url.database in _fast_sqlite_dbs:
        statement = f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS};"
    return statement, parameters


@contextlib.contextmanager
def fast_fail(uri: str) -> Iterator[None]:
    """Within the block, MLflow gives up on `uri` within seconds instead of retrying for minutes."""
    added: dict[str, str] = {}
    db = _sqlite_path(uri)
    if db is not None and db not in _fast_sqlite_dbs:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if not _fast_sqlite_dbs:  # one listener for all engines; it acts on the registered dbs only
            event.listen(Engine, "before_cursor_execute", _busy_timeout, retval=True)
        _fast_sqlite_dbs.add(db)
    elif urlparse(uri).scheme in ("http", "https"):
        added = {k: v for k, v in _FAST_HTTP_ENV.items() if k not in os.environ}
        os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def connect(cfg: TrackingConfig) -> MLflowTracker | None:
    """An MLflowTracker on cfg's store, or None during an outage (other errors raise)."""
    uri = anchor_store(cfg.tracking_uri)
    try:
        with fast_fail(uri):
            return MLflowTracker(cfg, reraise=is_outage) if store_reachable(uri) else None
    except Exception as e:
        if not is_outage(e):
            raise
        return None
