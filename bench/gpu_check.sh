#!/usr/bin/env bash
# The GPU check, one call of the device tool (under 8 minutes), from the repo root there:
#   bash bench/gpu_check.sh
# The GPU image has torch, transformers and accelerate; the project's other imports (math-verify,
# its parser) travel as wheels in .whl/ (see docs/gpu.md, "GPU check"). Output also goes to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"
  python3 -c "import vllm" 2>/dev/null && echo "vllm: installed" || echo "vllm: NOT installed on this machine: the vLLM engine and tests/gpu/test_vllm_parity.py cannot run here"
  # the gpu-marked tests (skip themselves without vllm), then the CUDA training check
  python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider || true
  timeout 420 python3 bench/gpu_check.py --steps 4 --prompts 8 --group 8 --new-tokens 256
} 2>&1 | tee "$OUT/gpu_check.log"
