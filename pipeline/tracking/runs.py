"""Which tracker a stage logs through, and the parent run its run nests under.

The top of the package's dependency order (base <- mlflow_store <- outage <- replay <- spool <- runs):
for the mlflow backend `make_tracker` returns `spool.SpoolingTracker`, which wraps `MLflowTracker`:
while the store is unreachable or locked, calls are spooled to a local file and replayed when it is
back (see that module).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from pipeline.config import TrackingConfig
from pipeline.tracking.base import NullTracker, Tracker, best_effort, git_sha
from pipeline.tracking.mlflow_store import MLflowTracker, anchor_store
from pipeline.tracking.outage import fast_fail, is_outage, store_reachable
from pipeline.tracking.spool import SpoolingTracker

_log = logging.getLogger(__name__)


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
        with best_effort("finding the parent run"):
            query = f"tags.`pipeline.invocation` = '{invocation}' and tags.`pipeline.role` = 'parent'"
            if found := tracker.find_run(query):
                return found
            all_tags = {**(tags or {}), "pipeline.invocation": invocation, "pipeline.role": "parent"}
            if sha := git_sha():
                all_tags["git_sha"] = sha
            run_id = tracker.create_run(invocation, all_tags)
            tracker.set_terminated(run_id, "FINISHED")
            return run_id
    return None


def log_to_parent(cfg: TrackingConfig, parent: str | None, steps: Sequence[Mapping[str, float]]) -> None:
    """Copy a stage's headline numbers onto its invocation's parent run: `steps[i]` at step i.

    The parent is the row MLflow's runs table shows for a sweep or a DVC experiment; without numbers of
    its own it compares nothing and its chart view is empty. Best effort, like the parent itself: the
    stage's own run and its DVC metrics already hold every number, so an outage only costs the copy.
    """
    if cfg.backend != "mlflow" or parent is None or not steps:
        return
    uri = anchor_store(cfg.tracking_uri)
    with fast_fail(uri), best_effort("copying headline metrics to the parent run"):
        tracker = MLflowTracker(cfg)
        tracker.attach(parent)
        for step, metrics in enumerate(steps):
            tracker.log_metrics(metrics, step=step)
        tracker.attach(None)


def make_tracker(cfg: TrackingConfig) -> Tracker:
    if cfg.backend == "null":
        return NullTracker()
    if cfg.backend == "mlflow":
        return SpoolingTracker(cfg)
    raise ValueError(f"unknown tracking backend {cfg.backend!r}")
