"""Stage outputs are written atomically: a writer that fails halfway (here: a real full disk, by
RLIMIT_FSIZE, in a child process) leaves the previous file or folder exactly as it was and no temporary
file behind, so DVC can never cache half an output."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from pipeline.atomic import write_json_atomic, write_text_atomic
from pipeline.modeling.models import save_atomically, tiny_random_model, tiny_tokenizer
from pipeline.report import plot_curves

REPO = Path(__file__).resolve().parents[2]
LIMIT = 4096  # bytes per file: every writer below writes more than that

# What each stage writes, each through its own writer, over a complete previous version.
CHILD = """
import json, sys
from pathlib import Path
from pipeline.atomic import write_json_atomic, write_text_atomic
from pipeline.data.records import write_prompts
from pipeline.modeling.models import save_atomically, tiny_random_model, tiny_tokenizer
from pipeline.report import plot_curves
from pipeline.types import Prompt

root = Path(sys.argv[1])
curves = json.loads((root / "curves.json").read_text())
writers = {
    "text": lambda: write_text_atomic(root / "report.md", "new " * 5000),
    "json": lambda: write_json_atomic(root / "metrics.json", {"x": list(range(5000))}),
    "prompts": lambda: write_prompts(
        [Prompt(id=str(i), messages=[{"role": "user", "content": "q" * 100}]) for i in range(100)],
        root / "train.jsonl",
    ),
    "plots": lambda: plot_curves(curves, root / "plots"),
    "model": lambda: save_atomically(root / "model", tiny_random_model(seed=1), tiny_tokenizer()),
}
failed = {}
for name, write in writers.items():
    try:
        write()
    except Exception as e:
        failed[name] = f"{type(e).__name__}: {e}"
print(json.dumps(failed))
"""


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_failed_writes_leave_previous_outputs_intact(tmp_path) -> None:
    curves = {"intuitor": [{"step": i, "reward_mean": i / 3, "gold_accuracy": 0.1 * i} for i in range(4)]}
    (tmp_path / "curves.json").write_text(json.dumps(curves))
    write_text_atomic(tmp_path / "report.md", "old report\n")
    write_json_atomic(tmp_path / "metrics.json", {"x": 1})
    write_text_atomic(tmp_path / "train.jsonl", '{"id": "old"}\n')
    plot_curves(curves, tmp_path / "plots")
    save_atomically(tmp_path / "model", tiny_random_model(seed=0), tiny_tokenizer())
    before = _snapshot(tmp_path)
    assert any(len(v) > LIMIT for k, v in before.items() if k.startswith("plots/"))

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    # every writer hit the full disk ...
    assert set(failed) == {"text", "json", "prompts", "plots", "model"}, failed
    assert all("too large" in v.lower() for v in failed.values()), failed
    # ... and left no trace: same files, same bytes, no temporary siblings
    assert _snapshot(tmp_path) == before
