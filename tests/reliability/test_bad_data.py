"""Bad data stops with one clear error naming file and line, or (with `on_invalid: skip`) is skipped,
logged once and counted in data/stats.json: never a silent zero reward or a silently wrong benchmark.

Every case calls the real loaders on small files in tmp_path, laid out as the loaders read them; the last
two run the real prepare_data stage in a subprocess.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from smoke_config import benchmark_config, data_config, train_config

from pipeline.config import ConfigError
from pipeline.config.compose import compose_params
from pipeline.data.jsonl import DataError
from pipeline.data.records import read_prompts, write_prompts
from pipeline.data.screen import RecordScreen
from pipeline.tasks import load_benchmark
from pipeline.tasks.math import load_math
from pipeline.tasks.training import load_prompts
from pipeline.types import Prompt

REPO = Path(__file__).resolve().parents[2]


def _math(i: int, answer: str = "7") -> dict[str, Any]:
    return {"problem": f"p{i}", "solution": f"so \\boxed{{{answer}}}", "unique_id": f"train/x/{i}.json"}


def _lines(path: Path, rows: list[Any]) -> Path:
    """One line per row: a dict or list is dumped as JSON, a str is written as is (a broken line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


# -- a malformed line -------------------------------------------------------------------------------------


def test_malformed_jsonl_line_names_file_and_line(tmp_path) -> None:
    path = _lines(tmp_path / "train.jsonl", [_math(0), _math(1), '{"problem": "p2", "solution": '])
    with pytest.raises(DataError, match=rf"^{path}:3: invalid JSON"):
        load_prompts(data_config(name="math", path=str(path)), None)


def test_malformed_line_in_gzip_json_array_and_non_utf8(tmp_path) -> None:
    gz = tmp_path / "train.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"problem": "a", "solution": "\\\\boxed{1}"}\n[1, 2]\n'))
    with pytest.raises(DataError, match=rf"^{gz}:2: expected a JSON object, got list"):
        load_math(str(gz), "train", None)
    # A .json array: an element that is not an object is named by its index.
    arr = tmp_path / "train.json"
    arr.write_text(json.dumps([_math(0), "oops"]))
    with pytest.raises(DataError, match=rf"^{arr}\[1\]: expected a JSON object, got str"):
        load_math(str(arr), "train", None)
    # Bytes that are not UTF-8: the line that holds them, not a codec traceback from the middle of a chunk.
    raw = tmp_path / "latin1.jsonl"
    raw.write_bytes(b'{"problem": "a", "solution": "\\\\boxed{1}"}\n{"problem": "caf\xe9"}\n')
    with pytest.raises(DataError, match=rf"^{raw}:2: not UTF-8 text"):
        load_math(str(raw), "train", None)
    # A gzip cut short (an interrupted copy).
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b"".join(json.dumps(_math(i)).encode() + b"\n" for i in range(50)))[:-30])
    with pytest.raises(DataError, match=rf"^{cut}: corrupt or truncated compressed file"):
        load_math(str(cut), "train", None)


def test_train_time_read_of_data_train_jsonl_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "data" / "train.jsonl"
    write_prompts([Prompt(id="a", messages=[{"role": "user", "content": "1+1?"}], gold="2")] * 2, path)
    assert len(read_prompts(path)) == 2
    with path.open("a") as f:
        f.write('{"id": "c", "messages": [}\n')
    with pytest.raises(DataError, match=rf"^{path}:3: invalid JSON"):
        read_prompts(path)
    _lines(path, [{"id": "a", "messages": []}, {"id": "b", "gold": "2"}])
    with pytest.raises(DataError, match=rf"^{path}:2: record lacks field 'messages'"):
        read_prompts(path)


# -- a missing field --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "field"),
    [
        ("math", [_math(0), {"problem": "p1", "unique_id": "u1"}], "solution"),
        ("math", [_math(0), {"solution": "\\boxed{1}"}], "problem"),
        ("gsm8k", [{"question": "q", "answer": "#### 1"}, {"question": "q2"}], "answer"),
    ],
)
def test_missing_field_names_file_line_and_field(tmp_path, name: str, rows: list, field: str) -> None:
    path = _lines(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match=rf"^{path}:2: record lacks field '{field}'"):
        load_prompts(data_config(name=name, path=str(path)), None)


def test_missing_or_mistyped_field_in_json_array_and_benchmark(tmp_path) -> None:
    arr = tmp_path / "train.json"
    arr.write_text(json.dumps([_math(0), {"problem": "p1"}]))
    with pytest.raises(DataError, match=rf"^{arr}\[1\]: record lacks field 'solution'"):
        load_prompts(data_config(name="math", path=str(arr)), None)
    # A number where text belongs would only fail later, in the tokenizer, with no location.
    path = _lines(tmp_path / "typed.jsonl", [_math(0), {**_math(1), "problem": 12}])
    with pytest.raises(DataError, match=rf"^{path}:2: field 'problem' must be str, got int"):
        load_prompts(data_config(name="math", path=str(path)), None)
    bench = _lines(
        tmp_path / "m500.jsonl", [{"problem": "p", "answer": "1", "unique_id": "u0"}, {"problem": "p"}]
    )
    with pytest.raises(DataError, match=rf"^{bench}:2: record lacks field 'unique_id'"):
        load_benchmark(benchmark_config("math500", path=str(bench)), data_config(), None)


# -- an empty dataset -------------------------------------------------------------------------------------


def test_empty_dataset_is_an_error(tmp_path) -> None:
    blank = _lines(tmp_path / "blank.jsonl", ["", "   "])
    with pytest.raises(DataError, match=rf"^{blank}: the file holds no records"):
        load_prompts(data_config(name="gsm8k", path=str(blank)), None)
    array = tmp_path / "empty.json"
    array.write_text("[]")
    with pytest.raises(DataError, match=rf"^{array}: the file holds no records"):
        load_prompts(data_config(name="math", path=str(array)), None)
    # `limit: 0` would write an empty data/train.jsonl (params.yaml bounds it too; this is the API path).
    good = _lines(tmp_path / "good.jsonl", [_math(0)])
    with pytest.raises(ConfigError, match=r"^data\.limit: must be a positive count"):
        # replace(): a config object built in code, past build()'s range check
        load_prompts(replace(data_config(name="math", path=str(good)), limit=0), None)
    with pytest.raises(ConfigError, match=r"^benchmarks\.math500\.limit: must be a positive count"):
        load_benchmark(replace(benchmark_config("math500", path=str(good)), limit=0), data_config(), None)


def test_dataset_emptied_by_skipping_is_an_error(tmp_path) -> None:
    path = _lines(tmp_path / "train.jsonl", [_math(0, "\\text{ }"), {**_math(1), "solution": "no box"}])
    with pytest.raises(DataError, match=rf"^{path}: no usable records for data \(2 skipped: "):
        load_prompts(data_config(name="math", path=str(path), on_invalid="skip"), None)
    # A benchmark too: a DataError (exit 2 in a stage), not a ValueError traceback.
    bench = _lines(tmp_path / "m500.jsonl", [{"problem": "p", "answer": "", "unique_id": "u0"}])
    with pytest.raises(DataError, match=r"no usable records for benchmarks\.math500 \(1 skipped: \{'empt"):
        _load_bench("math500", bench, "skip")


# -- a gold answer math-verify cannot parse ---------------------------------------------------------------


def _load_train(name: str, path: Path, on_invalid: Any, screen: RecordScreen | None = None) -> list[Prompt]:
    return load_prompts(data_config(name=name, path=str(path), on_invalid=on_invalid), None, screen)


def _load_bench(name: str, path: Path, on_invalid: Any, screen: RecordScreen | None = None) -> list[Prompt]:
    bench = benchmark_config(name, path=str(path), on_invalid=on_invalid)
    return load_benchmark(bench, data_config(), None, screen)


GSM_OK = {"question": "q", "answer": "#### 3"}
M500_OK = {"problem": "p", "answer": "1", "unique_id": "a"}
# (loader, dataset, good row, bad row, record id of the bad row, text the message must hold)
GOLD_CASES = [
    (_load_train, "math", _math(0), _math(1, "\\text{ }"), "train/x/1.json", "'\\\\text{ }' cannot be"),
    (_load_train, "math", _math(0), {**_math(1), "solution": "7"}, "train/x/1.json", "no non-empty"),
    (_load_train, "gsm8k", GSM_OK, {"question": "q", "answer": "#### "}, "gsm8k/train/1", "'' is empty"),
    (_load_bench, "gsm8k", GSM_OK, {"question": "q", "answer": "3"}, "gsm8k/test/1", "no '#### <number>'"),
    (_load_bench, "math500", M500_OK, {**M500_OK, "answer": "\\frac{1}{", "unique_id": "b"}, "b", "unbalan"),
]


@pytest.mark.parametrize(("load", "name", "good", "bad", "record_id", "text"), GOLD_CASES)
def test_ungradable_gold_is_an_error_naming_file_line_id_and_gold(
    tmp_path, load, name: str, good: dict, bad: dict, record_id: str, text: str
) -> None:
    path = _lines(tmp_path / f"{name}.jsonl", [good, bad, good])
    with pytest.raises(DataError) as err:
        load(name, path, "error")
    msg = str(err.value)
    assert msg.startswith(f"{path}:2: ") and f"record {record_id!r}" in msg and text in msg, msg
    assert "on_invalid: skip" in msg  # says how to skip instead


def test_ungradable_gold_is_skipped_counted_and_logged_once(tmp_path, caplog) -> None:
    rows = [_math(0), _math(1, "\\text{}"), _math(2, "\\,"), {**_math(3), "solution": "none"}, _math(4, "3")]
    path = _lines(tmp_path / "train.jsonl", rows)
    screen = RecordScreen("skip", "data")
    with caplog.at_level(logging.WARNING, logger="pipeline.data.screen"):
        prompts = _load_train("math", path, "skip", screen)
    assert [p.id for p in prompts] == ["train/x/0.json", "train/x/4.json"]
    assert screen.stats() == {
        "kept": 2,
        "skipped": 3,
        "skipped_by_reason": {"unparseable": 1, "empty": 1, "no_gold": 1},
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "skipped 3 invalid record(s)" in warnings[0] and f"{path}:2 (unparseable)" in warnings[0]
    assert f"{path}:4 (no_gold)" in warnings[0]


# -- the prepare_data stage: one line on stderr and exit 2, or a count in data/stats.json -----------------


@pytest.fixture(scope="module")
def smoke_params(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    compose_params(path, ["experiment=smoke"], conf_dir=REPO / "conf")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _prepare_data(tmp_path: Path, params: dict, on_invalid: str) -> subprocess.CompletedProcess[str]:
    data = _lines(tmp_path / "math" / "train.jsonl", [_math(0), _math(1), _math(2, "\\text{ }"), _math(3)])
    tree = yaml.safe_load(yaml.safe_dump(params))  # a deep copy
    tree["data"].update(name="math", path=str(data), limit=None, on_invalid=on_invalid)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "stages.prepare_data"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_prepare_data_stage_stops_with_one_line_and_exit_2(tmp_path, smoke_params) -> None:
    done = _prepare_data(tmp_path, smoke_params, "error")
    assert done.returncode == 2, done.stderr[-2000:]
    data = tmp_path / "math" / "train.jsonl"
    expected = f"error: {data}:3: gold answer '\\\\text{{ }}' cannot be parsed by math-verify"
    assert done.stderr.startswith(expected), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "data" / "train.jsonl").exists()


def test_prepare_data_stage_skips_and_counts_in_stats_json(tmp_path, smoke_params) -> None:
    done = _prepare_data(tmp_path, smoke_params, "skip")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{tmp_path / 'math' / 'train.jsonl'}:3 (unparseable)" in done.stderr  # the one warning
    stats = json.loads((tmp_path / "data" / "stats.json").read_text())
    assert stats["train"] == {"kept": 3, "skipped": 1, "skipped_by_reason": {"unparseable": 1}, "written": 3}
    assert len(read_prompts(tmp_path / "data" / "train.jsonl")) == 3
    # The smoke benchmark (arith, a 6-item subset of 12) is counted too, before and after its subset.
    assert stats["arith"] == {"kept": 12, "skipped": 0, "skipped_by_reason": {}, "written": 6}


def test_gold_reward_on_prompts_without_gold_is_an_error_before_loading(tmp_path) -> None:
    from pipeline.steps import run_training

    golds = ["4", None, None]
    prompts = [
        Prompt(id=f"q{i}", messages=[{"role": "user", "content": "?"}], gold=g) for i, g in enumerate(golds)
    ]
    # the model is never reached
    cfg = train_config("grpo", tmp_path, {"model.name_or_path": str(tmp_path / "no-model")})
    with pytest.raises(
        DataError, match=r"2 of 3 training prompts .* have no gold answer \(first: \['q1', 'q2'\]\)"
    ):
        run_training(cfg, prompts=prompts)
