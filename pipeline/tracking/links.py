"""Links into `mlflow ui` that open this project's views directly.

MLflow 3.17's UI picks GenAI or model-training navigation from a global switch (default GenAI, kept in
the browser's local storage), not from the experiment's `mlflow.experimentKind` tag, so a plain link
to the experiment lands on the GenAI trace overview. `workflowType=machine_learning` in the link sets
the switch. Sorting the runs by name keeps the method runs in view: MLflow folds children under their
parent only in its default order (by start time).
"""

from __future__ import annotations

from urllib.parse import quote


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs (every method and evaluation run, flat) with their charts."""
    order = quote("tags.`mlflow.runName`", safe="")
    return (
        f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&compareRunsMode=CHART&orderByKey={order}&orderByAsc=true"
    )


def curves_url(base: str, experiment_id: str, parent_run_id: str) -> str:
    """One invocation's parent run: each curve's methods side by side (reward/<method>, ...) and the
    headline score of every model per benchmark."""
    return (
        f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{parent_run_id}/model-metrics"
        "?workflowType=machine_learning"
    )
