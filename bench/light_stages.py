"""Wall seconds of the two stages that load no model, `python -m stages.prepare_data` and
`python -m stages.report`, in this checkout vs a baseline commit's (default 8294b45: every stage
imported torch and transformers at start-up through pipeline/steps.py and stages/common.py).

Each run is its own process, rounds alternating. The baseline runs in a temporary git worktree with
this checkout's params.yaml and results/ copied in (so both report the same results), and writes its
own data/ there. Run after `make demo` (report reads results/).

    .venv/bin/python bench/light_stages.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("prepare_data", "report")


def timed_stage(stage: str, cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default="8294b45", help="commit to compare with")
    args = ap.parse_args()
    here = Path.cwd()
    if not (here / "results" / "eval").is_dir():
        sys.exit("no results/eval here: run `make demo` first")
    with tempfile.TemporaryDirectory(prefix="light_stages_") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], check=True)
        try:
            shutil.copy(here / "params.yaml", base / "params.yaml")
            shutil.copytree(here / "results", base / "results")
            shutil.copytree(here / "data", base / "data")
            times: dict[tuple[str, str], list[float]] = {}
            for r in range(args.rounds):
                trees = [("ours", here), ("baseline", base)]
                for name, cwd in trees if r % 2 == 0 else trees[::-1]:
                    for stage in STAGES:
                        times.setdefault((stage, name), []).append(timed_stage(stage, cwd))
                line = ", ".join(f"{s} {n} {v[-1]:.2f} s" for (s, n), v in times.items())
                print(f"round {r + 1}: {line}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], check=True)
    parts = []
    for stage in STAGES:
        ours, old = times[stage, "ours"], times[stage, "baseline"]
        ratio = statistics.median(o / n for o, n in zip(old, ours, strict=True))
        parts.append(
            f"{stage}_s={statistics.median(ours):.2f} {stage}_baseline_s={statistics.median(old):.2f} "
            f"{stage}_ratio={ratio:.2f}"
        )
    print(f"SUMMARY light_stages {' '.join(parts)} baseline={args.baseline}")


if __name__ == "__main__":
    main()
