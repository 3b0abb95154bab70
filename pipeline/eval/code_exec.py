"""Running a code benchmark's programs in the sandbox, and bounded summaries of the outcomes.

Every program of a grading call goes to the sandbox in one parallel batch (one process per program, so
one item's crash, hang or stray global state never touches another's verdict). The graders wrap each
program in the check harness (`check_harness.py`), which decides whether its checks ran to the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.config import BenchmarkConfig
from pipeline.eval.sandbox import ExecResult, SandboxLimits, run_python_many

# Characters of stderr / output kept per run in Verdict.detail (samples.jsonl stays small).
DETAIL_CHARS = 300


def run_programs(jobs: Sequence[tuple[str, str]], bench: BenchmarkConfig, desc: str) -> list[ExecResult]:
    """Run (source, stdin) jobs in parallel under the benchmark's wall-clock limit; results in order."""
    limits = SandboxLimits(wall_s=bench.timeout_s)
    return run_python_many(jobs, limits=limits, workers=bench.workers, show_progress=True, desc=desc)


def clip(text: str, limit: int = DETAIL_CHARS) -> str:
    """`text` cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[:limit] + "...[cut]"


def error_tail(result: ExecResult) -> str:
    """The last non-empty stderr line (the exception) of a failed run, bounded."""
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    return clip(lines[-1]) if lines else ""


def run_summary(result: ExecResult) -> dict[str, Any]:
    """A JSON-ready record of one run: status, return code, wall time and the error line if it failed."""
    summary: dict[str, Any] = {
        "status": result.status,
        "returncode": result.returncode,
        "wall_s": round(result.wall_s, 3),
    }
    if not result.ok:
        summary["error"] = error_tail(result)
    return summary
