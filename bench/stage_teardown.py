"""How long a stage's process takes to end after its work is done: `stages.common.finish` vs sys.exit.

Each run is its own process that does what an evaluate stage does with rollout=vllm on the demo config
(the dequantized SmolLM2 in models/base, a vLLM-CPU engine built by `make_eval_engine`, one greedy
generate of 8 arith items), prints the time, and ends with `finish(0)` (the stages' way since this
change: streams flushed, no interpreter teardown) or `sys.exit(0)` (before: vLLM's atexit shutdown,
then the interpreter freeing the KV cache, the models and the modules). Teardown = the parent's clock
when the process has ended minus the child's clock at its last line. Rounds alternate the order.

    make setup-vllm
    INTUITOR_DATA_DIR=../shared/data .venv/bin/python bench/stage_teardown.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CHILD = """
import sys, time
sys.path.insert(0, "bench")  # run from the repo root
from demo_evaluation import demo_evaluation
from stages.common import finish

demo = demo_evaluation(sys.argv[2], limit=8)
demo.run(*demo.engine())
print(f"DONE {time.time()}", flush=True)
finish(0) if sys.argv[1] == "finish" else sys.exit(0)
"""


def teardown_s(mode: str, model_cache: str) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode, model_cache],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    done = None
    for line in proc.stdout:
        if line.startswith("DONE "):
            done = float(line.split()[1])
    if proc.wait() != 0 or done is None:
        raise RuntimeError(f"{mode} run failed (exit status {proc.returncode})")
    return time.time() - done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model-cache", default="models/base", help="where the dequantized SmolLM2 is kept")
    args = ap.parse_args()
    cache = str(Path(args.model_cache).resolve())
    times: dict[str, list[float]] = {"finish": [], "sys_exit": []}
    for r in range(args.rounds):
        for mode in list(times) if r % 2 == 0 else list(times)[::-1]:
            times[mode].append(teardown_s(mode, cache))
            print(f"round {r + 1} {mode}: {times[mode][-1]:.2f} s to end after the last line", flush=True)
    saved = [s - f for s, f in zip(times["sys_exit"], times["finish"], strict=True)]
    print(
        f"SUMMARY stage_teardown finish_s={statistics.median(times['finish']):.2f} "
        f"sys_exit_s={statistics.median(times['sys_exit']):.2f} saved_s={statistics.median(saved):.2f}"
    )


if __name__ == "__main__":
    main()
