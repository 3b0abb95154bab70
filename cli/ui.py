"""Open the project's MLflow store in `mlflow ui`, printing the links that land on its views.

python -m cli.ui [--port 5000] [--uri sqlite:///mlflow.db] [--experiment intuitor-pipeline]
"""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.tracking.links import curves_url, runs_url
from pipeline.tracking.mlflow_store import anchor_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="sqlite:///mlflow.db", help="tracking store (tracking.tracking_uri)")
    parser.add_argument("--experiment", default="intuitor-pipeline", help="tracking.experiment")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    import mlflow

    uri = anchor_store(args.uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    base = f"http://{args.host}:{args.port}"
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        print(f"no experiment {args.experiment!r} in {uri} yet: run the pipeline first (make demo)")
    else:
        print(f"runs of {args.experiment}:\n  {runs_url(base, exp.experiment_id)}")
        parents = client.search_runs(
            [exp.experiment_id],
            filter_string="tags.`pipeline.role` = 'parent'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if parents:
            run = parents[0]
            print(f"method curves of the latest invocation ({run.info.run_name}):")
            print(f"  {curves_url(base, exp.experiment_id, run.info.run_id)}")
    sys.stdout.flush()
    # one worker and no job runner: a local viewer needs no more, and each is a process
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port), "--workers", "1"]
    os.execv(sys.executable, cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
