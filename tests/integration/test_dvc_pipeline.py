"""The real DVC pipeline on the smoke experiment, in a scratch copy of the repo (CI runs this).

`dvc repro` end to end, a second `dvc repro` that does nothing, and `dvc exp run -S method=...`
recomposing params.yaml through the Hydra integration, all logged to a real MLflow sqlite store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from mlflow_browser import ARTIFACTS, INSTALL_HINT, browser, chromium, mlflow_ui
from safetensors.torch import load_file
from scratch_repo import run_checked as _run
from scratch_repo import scratch_pipeline

from pipeline.modeling.precision import resolve_mixed_precision
from pipeline.tracking.links import curves_url, runs_url

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    return scratch_pipeline(tmp_path_factory.mktemp("pipeline") / "repo")


def test_dvc_repro_smoke_end_to_end(repo) -> None:
    path, env = repo
    out = _run(["dvc", "repro"], path, env)
    for stage in (
        "prepare_model",
        "prepare_data",
        "train@intuitor",
        "train@grpo",
        "train@grpo_pv",
        "evaluate@base-arith",
        "evaluate@grpo_pv-arith",
        "report",
    ):
        assert f"Running stage '{stage}'" in out
    report = (path / "results/report.md").read_text()
    assert "| base | 0." in report and "| grpo_pv |" in report
    assert {p.name for p in (path / "results/plots").glob("*.png")} == {
        "reward.png",
        "self_certainty.png",
        "response_length.png",
        "gold_accuracy.png",
        "answer_rate.png",
    }
    assert "## Paired comparisons" in report and "| arith | grpo | base |" in report
    headline = json.loads((path / "results/summary.json").read_text())["headline"]
    assert set(headline["arith"]) == {"base", "intuitor", "grpo", "grpo_pv"}
    assert set(headline["train"]["intuitor"]) == {"reward", "sc", "len"}
    metrics = json.loads((path / "results/eval/intuitor/arith/metrics.json").read_text())
    assert metrics["n"] == 6 and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["mixed_precision"] == "no"  # the HF engine generates in the weights' precision on CPU
    steps = (path / "results/train/grpo/steps.csv").read_text().splitlines()
    assert steps[0].startswith("step,reward_mean,self_certainty_mean") and len(steps) == 3
    summary = json.loads((path / "results/train/intuitor/metrics.json").read_text())
    assert summary["mixed_precision"] == resolve_mixed_precision("auto", "cpu")  # recorded as resolved

    client = MlflowClient(tracking_uri=f"sqlite:///{path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("intuitor-pipeline")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("pipeline.role") == "parent"]
    assert len(parents) == 1
    # the runs table compares invocations on the parent's own numbers: every score, every method curve
    parent_metrics = parents[0].data.metrics
    for model in ("base", "intuitor", "grpo", "grpo_pv"):
        score = json.loads((path / f"results/eval/{model}/arith/metrics.json").read_text())["score"]
        assert parent_metrics[f"arith/{model}"] == pytest.approx(score)
    reward = client.get_metric_history(parents[0].info.run_id, "reward/grpo")
    assert [m.step for m in sorted(reward, key=lambda m: m.step)] == [0, 1]
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on runs, not GenAI
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 3 + 4  # train x3, evaluate x4
    assert {r.data.tags["method"] for r in children} == {"intuitor", "grpo", "grpo_pv", "base"}
    assert all("git_sha" in r.data.tags for r in children)
    precision = resolve_mixed_precision("auto", "cpu")
    train_runs = [r for r in children if r.data.tags.get("stage") == "train"]
    assert {r.data.params["trainer.mixed_precision"] for r in train_runs} == {precision}

    again = _run(["dvc", "repro"], path, env)
    assert "Running stage" not in again and "up to date" in again
    # kept for the two-process test below
    shutil.copy2(path / "models/intuitor/model.safetensors", path.parent / "intuitor_one_process.safetensors")


@pytest.mark.browser
def test_mlflow_ui_shows_the_method_runs_and_their_curves(repo) -> None:
    """A real browser on `mlflow ui` over the smoke pipeline's store: the experiment opens on its runs
    (model training, not the GenAI overview), the method runs are listed, and the parent run's charts
    show each curve for every method side by side. Screenshots go to test-artifacts/."""
    if chromium() is None:
        pytest.skip(f"no Chromium on PATH: {INSTALL_HINT}")
    path, _ = repo
    db = path / "mlflow.db"
    if not db.is_file():
        pytest.skip("needs test_dvc_repro_smoke_end_to_end first")
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("intuitor-pipeline")
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`pipeline.role` = 'parent'")[0]
    with mlflow_ui(db) as url, browser() as page:
        page.goto(f"{url}/#/experiments/{exp.experiment_id}?workflowType=machine_learning")
        # the experiment's kind sends it to the runs tab, not GenAI's trace overview
        page.wait_for("document.body.innerText.includes('matching runs')")
        assert "Detect Issues" not in page.text()
        # the links `python -m cli.ui` prints: the runs, flat (sorted by name, so MLflow does not fold
        # the children under the parent) ...
        page.goto(runs_url(url, exp.experiment_id))
        page.wait_for("document.body.innerText.includes('train-grpo_pv')")
        text = page.text()
        for run in ("train-intuitor", "train-grpo", "eval-base-arith", parent.info.run_name):
            assert run in text, f"run {run} not listed"
        page.screenshot(ARTIFACTS / "mlflow_ui_runs.png")
        # ... and the parent's charts, one per metric (plotly: a .js-plotly-plot each, its legend naming
        # the curve), drawn once their data has arrived
        page.goto(curves_url(url, exp.experiment_id, parent.info.run_id))
        charts = len(parent.data.metrics)  # 4 scores + 4 curves x 3 methods
        assert charts == 16
        page.wait_for(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}")
        page.wait_for("document.body.innerHTML.includes('self_certainty/grpo_pv')")
        html = page.html()
        shot = page.screenshot(ARTIFACTS / "mlflow_ui_method_curves.png")
    for method in ("intuitor", "grpo", "grpo_pv"):
        for curve in ("reward", "self_certainty", "length"):
            assert f"{curve}/{method}" in html, f"no {curve}/{method} chart"
    assert shot.stat().st_size > 20_000


def test_dvc_exp_run_recomposes_params(repo) -> None:
    path, env = repo
    out = _run(
        [
            "dvc",
            "exp",
            "run",
            "-n",
            "only-grpo",
            "-S",
            "experiment=smoke",
            "-S",
            "method=grpo",
            "-S",
            "algorithm.beta=0",
        ],
        path,
        env,
    )
    assert "Running stage 'train@grpo'" in out and "train@intuitor" not in out
    client = MlflowClient(tracking_uri=f"sqlite:///{path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("intuitor-pipeline")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`pipeline.invocation` = 'only-grpo'")
    assert len(runs) == 1  # the experiment's parent run, named after the DVC experiment
    kids = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{runs[0].info.run_id}'"
    )
    train = [r for r in kids if r.data.tags.get("stage") == "train"]
    assert [r.data.tags["method"] for r in train] == ["grpo"]
    assert train[0].data.params["method.rewards"].startswith("[{'name': 'gold'")
    assert float(train[0].data.params["algorithm.beta"]) == 0.0
    params = (path / "params.yaml").read_text()  # recomposed by DVC's Hydra integration
    assert "beta: 0" in params and "grpo_pv" not in params


def test_dvc_exp_run_two_processes(repo) -> None:
    """`trainer=multi_cpu`: the train stage relaunches itself on 2 processes (torchrun, gloo) and
    ends with the weights the one-process run of the first test produced."""
    path, env = repo
    one_process = path.parent / "intuitor_one_process.safetensors"
    if not one_process.is_file():
        pytest.skip("needs test_dvc_repro_smoke_end_to_end first")
    shutil.rmtree(path / "runs/intuitor", ignore_errors=True)  # no checkpoint to resume from
    args = ["-S", "experiment=smoke", "-S", "method=intuitor", "-S", "trainer=multi_cpu"]
    out = _run(["dvc", "exp", "run", "-n", "two-processes", *args], path, env)
    assert "Running stage 'train@intuitor'" in out
    summary = json.loads((path / "results/train/intuitor/metrics.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2 and summary["strategy"] == "ddp"
    client = MlflowClient(tracking_uri=f"sqlite:///{path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("intuitor-pipeline")
    parent = client.search_runs(
        [exp.experiment_id], filter_string="tags.`pipeline.invocation` = 'two-processes'"
    )
    kids = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'"
    )
    train = [r for r in kids if r.data.tags.get("stage") == "train"]
    assert len(train) == 1 and train[0].data.params["trainer.processes"] == "2"  # logged once, by rank 0
    history = client.get_metric_history(train[0].info.run_id, "reward/mean")
    assert [m.step for m in history] == [0, 1]
    two, one = load_file(str(path / "models/intuitor/model.safetensors")), load_file(str(one_process))
    if summary["mixed_precision"] == "no":
        assert max(float((two[k] - one[k]).abs().max()) for k in one) < 1e-6
    else:
        # bf16 (the default where the CPU has bf16 units): 1 and 2 processes cut micro-batches
        # differently and bf16 rounds each cut's matmuls differently, so compare the updates' direction
        # and size (a gradient averaged wrongly across processes fails both).
        base = load_file(str(path / "models/base/model.safetensors"))
        d_one = torch.cat([(one[k] - base[k]).flatten() for k in base])
        d_two = torch.cat([(two[k] - base[k]).flatten() for k in base])
        assert float(torch.nn.functional.cosine_similarity(d_one, d_two, dim=0)) > 0.99
        assert float((d_two - d_one).norm() / d_one.norm()) < 0.1


def _experiments(node: list[dict]) -> dict[str, dict]:
    """name -> data of every experiment in `dvc exp show --json` output."""
    out = {}
    for row in node:
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                out[rev["name"]] = rev["data"]
    return out


def test_dvc_exp_show_and_apply_past_experiments(repo) -> None:
    """Once the workspace has moved on, a past experiment's headline numbers still show in `dvc exp
    show` (results/ is gitignored: they come from DVC's cache) and `dvc exp apply` restores its report."""
    path, env = repo
    exps = _experiments(json.loads(_run(["dvc", "exp", "show", "--json"], path, env)))
    if "only-grpo" not in exps or "two-processes" not in exps:
        pytest.skip("needs the dvc exp run tests first")
    headline = exps["only-grpo"]["metrics"]["results/summary.json"]["data"]["headline"]
    assert set(headline["arith"]) == {"base", "grpo"} and set(headline["train"]) == {"grpo"}
    assert set(exps["two-processes"]["metrics"]["results/summary.json"]["data"]["headline"]["train"]) == {
        "intuitor"
    }
    _run(["dvc", "exp", "apply", "only-grpo"], path, env)
    report = (path / "results/report.md").read_text()
    assert "| grpo |" in report and "| intuitor |" not in report
    assert json.loads((path / "results/eval/grpo/arith/metrics.json").read_text())["n"] == 6
