"""The Hydra app for sweeps outside DVC: train every method of the composed config, evaluate, report.

    python -m cli.sweep experiment=smoke
    python -m cli.sweep -m experiment=smoke algorithm.beta=0,0.0001,0.005,0.01
    python -m cli.sweep -m hydra/launcher=local_parallel ...   # joblib; hydra/launcher=slurm: submitit

Each job works in its own Hydra output folder (models/, data/, runs/, results/ as under DVC) and
logs to the project's MLflow store: one parent run per invocation (the sweep), a child per step.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from omegaconf import DictConfig, OmegaConf

from pipeline.config import PipelineConfig, build
from pipeline.config.params import check_runnable
from pipeline.parallel.launch import launch_train_stage, needs_launch
from pipeline.steps import (
    evaluate_model,
    make_report,
    method_train_config,
    prepare_data,
    prepare_model,
    train_method,
)
from pipeline.tracking import anchor_store


def run_job(cfg: PipelineConfig, invocation: str) -> dict[str, float]:
    """The whole pipeline in the current directory; returns accuracy per (model, benchmark)."""
    prepare_model(cfg)
    prepare_data(cfg)
    for method in cfg.methods:
        trainer = method_train_config(cfg, method).trainer
        if needs_launch(trainer):
            # the train stage on trainer.processes processes, in this job's folder (its params.yaml)
            launch_train_stage(trainer, method, "params.yaml", env_extra={"DVC_EXP_NAME": invocation})
        else:
            train_method(cfg, method, invocation=invocation)
    scores = {}
    for model in cfg.evaluate_models:
        for bench in cfg.benchmarks:
            scores[f"{model}/{bench}"] = evaluate_model(cfg, model, bench, invocation=invocation)["score"]
    make_report(cfg)
    return scores


@hydra.main(config_path="../conf", config_name="config", version_base=None)
def main(dcfg: DictConfig) -> None:
    hc = HydraConfig.get()
    tree = OmegaConf.to_container(dcfg, resolve=True)
    tree["tracking"]["tracking_uri"] = anchor_store(tree["tracking"]["tracking_uri"], get_original_cwd())
    cfg = build(PipelineConfig, tree)  # validated before anything loads
    check_runnable(cfg)
    job_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode.name == "MULTIRUN"
    stamp = "-".join(Path(hc.sweep.dir if multirun else hc.run.dir).parts[-2:])
    invocation = f"sweep-{stamp}" if multirun else f"run-{stamp}"
    launch_dir = os.getcwd()
    os.chdir(job_dir)
    try:
        (job_dir / "params.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(tree)), encoding="utf-8")
        scores = run_job(cfg, invocation)
    finally:
        # the basic launcher runs the next job in this process, resolving its folder from the cwd
        os.chdir(launch_dir)
    print({"job": hc.job.num if multirun else 0, "overrides": list(hc.overrides.task), **scores})


if __name__ == "__main__":
    main()
