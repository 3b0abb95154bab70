"""A killed evaluation keeps its completed chunks and resumes to exactly the uninterrupted outputs.

Every run is the real evaluate stage (`python -m stages.evaluate`) in its own workspace, killed with
SIGKILL at a named fault point (INTUITOR_FAULT=eval_batch@<chunk>: a chunk generated and graded, not
yet appended to runs/eval/<model>/<benchmark>/samples.partial.jsonl). A resumed run is also given
eval_batch@<chunk> for every chunk it should take from the partial file: it would die there if it
generated that chunk again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from smoke_config import benchmark_config, data_config, model_config, smoke

from pipeline.config import BenchmarkConfig, to_dict
from pipeline.data.records import write_prompts
from pipeline.eval.partial import PartialSamples, fingerprint, source_digest
from pipeline.eval.runner import chunk_prompts
from pipeline.modeling.models import save_atomically, tiny_random_model, tiny_tokenizer
from pipeline.tasks import load_benchmark

pytestmark = pytest.mark.integration
PARTIAL = Path("runs/eval/tiny/arith/samples.partial.jsonl")
OUT = Path("results/eval/tiny/arith")
DATA = data_config(test_size=12)
# 10 items in chunks of 4, 4, 2 prompts (one generate batch of 4 each).
GREEDY = benchmark_config("arith", limit=10, max_new_tokens=6, batch_size=4)
# 8 items x 3 samples in chunks of 4 prompts (12 completions = 3 batches of 4 each).
SAMPLED = benchmark_config(
    "arith", limit=8, max_new_tokens=6, batch_size=4, n_samples=3, pass_k=[1, 3], temperature=1.0
)
# Differ between runs of the same evaluation by design.
VOLATILE = {"generate_s", "grade_s", "wall_s", "resumed_items", "mlflow_run_id"}


def _workspace(root: Path, bench: BenchmarkConfig, model_dir: Path) -> Path:
    """A pipeline folder as the evaluate stage sees it: params.yaml and data/eval/arith.jsonl."""
    cfg = dataclasses.replace(
        smoke(),
        model=model_config(system_prompt="SYS"),
        data=DATA,
        methods={},
        benchmarks={"arith": bench},
        evaluate_models={"tiny": str(model_dir)},
        tracking=dataclasses.replace(smoke().tracking, backend="null"),
    )
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(to_dict(cfg)), encoding="utf-8")
    write_prompts(load_benchmark(bench, DATA, "SYS"), root / "data/eval/arith.jsonl")
    return root


def _evaluate(*runs: tuple[Path, str]) -> list[subprocess.CompletedProcess]:
    """Run the evaluate stage in each (workspace, INTUITOR_FAULT), concurrently; wait for all."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.evaluate", "--model", "tiny", "--benchmark", "arith"],
            cwd=ws,
            # One thread each: the concurrent runs share the cores instead of oversubscribing them.
            env={**os.environ, "INTUITOR_FAULT": fault, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ws, fault in runs
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-4000:]


def _killed(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == -9, f"expected SIGKILL, got {proc.returncode}: {proc.stderr[-4000:]}"


def _chunks(ws: Path) -> list[dict]:
    """The chunk lines of a workspace's partial file (each line must be complete JSON)."""
    lines = (ws / PARTIAL).read_bytes().split(b"\n")
    assert lines[-1] == b"", "the partial file ends with a complete line"
    return [json.loads(line) for line in lines[1:-1]]


def _metrics(ws: Path) -> dict:
    return json.loads((ws / OUT / "metrics.json").read_text(encoding="utf-8"))


def _stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


def _records(ws: Path) -> list[dict]:
    return [json.loads(line) for line in (ws / OUT / "samples.jsonl").read_text().splitlines()]


def _assert_same_outputs(ws: Path, reference: Path) -> None:
    assert (ws / OUT / "samples.jsonl").read_bytes() == (reference / OUT / "samples.jsonl").read_bytes()
    assert _stable(_metrics(ws)) == _stable(_metrics(reference))
    assert not (ws / PARTIAL).exists(), "the partial file is deleted once the outputs are saved"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("models")
    return {s: save_atomically(root / f"{s}", tiny_random_model(seed=s), tiny_tokenizer()) for s in (0, 1)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, models) -> dict[str, Path]:
    """Uninterrupted runs (greedy, sampled) and the same evaluations killed before chunk 1 is saved."""
    root = tmp_path_factory.mktemp("runs")
    ws = {
        "greedy": _workspace(root / "greedy", GREEDY, models[0]),
        "sampled": _workspace(root / "sampled", SAMPLED, models[0]),
        "greedy_killed": _workspace(root / "greedy_killed", GREEDY, models[0]),
        "sampled_killed": _workspace(root / "sampled_killed", SAMPLED, models[0]),
    }
    faults = {"greedy": "", "sampled": "", "greedy_killed": "eval_batch@1", "sampled_killed": "eval_batch@1"}
    for name, proc in zip(ws, _evaluate(*((ws[n], faults[n]) for n in ws)), strict=True):
        (_killed if faults[name] else _ok)(proc)
    # What the kill left, for the tests that start from it in other workspaces.
    ws["greedy_partial"] = root / "greedy.partial.jsonl"
    ws["greedy_partial"].write_bytes((ws["greedy_killed"] / PARTIAL).read_bytes())
    return ws


@pytest.mark.parametrize("name", ["greedy", "sampled"])
def test_killed_evaluation_keeps_its_chunks_and_resumes_to_identical_outputs(runs, name: str) -> None:
    killed, reference = runs[f"{name}_killed"], runs[name]
    bench = GREEDY if name == "greedy" else SAMPLED
    assert not (killed / OUT / "samples.jsonl").exists()
    # Exactly the first chunk was saved: 4 prompts, all their samples, as the uninterrupted run has them.
    (chunk,) = _chunks(killed)
    assert chunk["chunk"] == 0 and len(set(chunk["ids"])) == 4
    expected = [r for i in chunk["ids"] for r in _records(reference) if r["id"] == i]
    assert chunk["records"] == expected and len(expected) == 4 * bench.n_samples

    (proc,) = _evaluate((killed, "eval_batch@0"))  # chunk 0 must come from the file, not the model
    _ok(proc)
    assert _metrics(killed)["resumed_items"] == 4
    assert _metrics(reference)["resumed_items"] == 0
    _assert_same_outputs(killed, reference)


def test_torn_last_line_is_cut_off_and_resuming_twice_still_matches(tmp_path, runs, models) -> None:
    ws = _workspace(tmp_path / "ws", GREEDY, models[0])
    saved = runs["greedy_partial"].read_bytes()
    torn = saved.split(b"\n")[1][:50]  # an append the kill cut short: no newline
    (ws / PARTIAL).parent.mkdir(parents=True)
    (ws / PARTIAL).write_bytes(saved + torn)

    (proc,) = _evaluate((ws, "eval_batch@0,eval_batch@2"))
    _killed(proc)
    assert "torn last line" in proc.stderr
    # The torn bytes are gone: chunk 1 was appended as a whole line after chunk 0.
    assert [c["chunk"] for c in _chunks(ws)] == [0, 1]

    (proc,) = _evaluate((ws, "eval_batch@0,eval_batch@1"))
    _ok(proc)
    assert _metrics(ws)["resumed_items"] == 8
    _assert_same_outputs(ws, runs["greedy"])


def test_partial_file_of_other_weights_or_config_is_discarded(tmp_path, runs, models) -> None:
    other_weights = _workspace(tmp_path / "weights", GREEDY, models[1])
    other_config = _workspace(tmp_path / "config", replace(GREEDY, max_new_tokens=5), models[0])
    for ws in (other_weights, other_config):
        (ws / PARTIAL).parent.mkdir(parents=True)
        (ws / PARTIAL).write_bytes(runs["greedy_partial"].read_bytes())
    procs = _evaluate((other_weights, ""), (other_config, ""))
    for proc, ws in zip(procs, (other_weights, other_config), strict=True):
        _ok(proc)
        assert "discarded" in proc.stderr
        assert _metrics(ws)["resumed_items"] == 0
        assert len(_records(ws)) == 10 and not (ws / PARTIAL).exists()


def test_chunks_are_the_fewest_prompts_that_fill_whole_generate_batches() -> None:
    for batch_size in range(1, 13):
        for n in range(1, 9):
            k = chunk_prompts(batch_size, n)
            assert (k * n) % batch_size == 0
            assert all((j * n) % batch_size for j in range(1, k))


def test_source_digest_follows_the_code_that_decides_the_samples(tmp_path) -> None:
    for name in ("eval/grader.py", "rl/trainer.py", "modeling/models.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("X = 1\n")
    before = source_digest(tmp_path)
    (tmp_path / "rl" / "trainer.py").write_text("X = 2\n")  # training code: the samples do not change
    (tmp_path / "eval" / "notes.md").write_text("not code")
    assert source_digest(tmp_path) == before
    for name in ("eval/grader.py", "modeling/models.py"):
        (tmp_path / name).write_text("X = 3\n")
        assert source_digest(tmp_path) != before
        before = source_digest(tmp_path)


def test_fingerprint_covers_config_prompts_and_model() -> None:
    prompts = load_benchmark(GREEDY, DATA, "SYS")
    model = {"weights": "w0", "dtype": "float32", "device": "cpu"}
    base = fingerprint(GREEDY, prompts, model)
    assert fingerprint(GREEDY, load_benchmark(GREEDY, DATA, "SYS"), dict(model)) == base
    variants = [
        fingerprint(replace(GREEDY, stop=["Q:"]), prompts, model),
        fingerprint(GREEDY, [replace(prompts[0], gold="-1"), *prompts[1:]], model),
        fingerprint(
            GREEDY, [replace(prompts[0], messages=[{"role": "user", "content": "x"}]), *prompts[1:]], model
        ),
        fingerprint(GREEDY, prompts[::-1], model),
        fingerprint(GREEDY, prompts, {**model, "weights": "w1"}),
        fingerprint(GREEDY, prompts, {**model, "dtype": "bfloat16"}),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_a_corrupt_complete_line_discards_the_whole_file(tmp_path) -> None:
    path = tmp_path / "samples.partial.jsonl"
    store = PartialSamples.open(path, "f", {})
    store.append(0, ["a"], [{"id": "a"}])
    store.close()
    with path.open("ab") as f:  # ends with its newline, so not a torn append: damage of unknown extent
        f.write(b'{"chunk": 1, "ids": ["b"], "rec\n')
    reopened = PartialSamples.open(path, "f", {})
    reopened.close()
    assert reopened.chunks == {}
    assert [json.loads(line)["fingerprint"] for line in path.read_text().splitlines()] == ["f"]
    store = PartialSamples.open(path, "f", {})  # and a sound file is read back as written
    store.append(0, ["a"], [{"id": "a"}])
    store.close()
    again = PartialSamples.open(path, "f", {})
    again.close()
    assert again.chunks == {0: [{"id": "a"}]}
