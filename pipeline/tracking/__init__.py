"""Experiment tracking behind one small interface: MLflow (local sqlite store by default) or nothing.

Modules, each importing only those before it: `base` (the Tracker interface, NullTracker, key and
value rules) <- `mlflow_store` (MLflowTracker, anchor_store) <- `outage` (telling an outage from a bad
call) <- `replay` (the spool file and its replay) <- `spool` (SpoolingTracker, the replay command)
<- `runs` (make_tracker, the parent run of an invocation). Callers import from here.
"""

from pipeline.tracking.base import MAX_PARAM_VALUE_LENGTH, NullTracker, Tracker, flatten_params, sanitize_key
from pipeline.tracking.mlflow_store import MLflowTracker, anchor_store
from pipeline.tracking.runs import invocation_name, log_to_parent, make_tracker, parent_run_id

__all__ = [
    "MAX_PARAM_VALUE_LENGTH",
    "MLflowTracker",
    "NullTracker",
    "Tracker",
    "anchor_store",
    "flatten_params",
    "invocation_name",
    "log_to_parent",
    "make_tracker",
    "parent_run_id",
    "sanitize_key",
]
