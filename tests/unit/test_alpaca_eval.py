"""AlpacaEval 2: loader, the no-judge path (outputs saved, no number), key errors, and the real judged path.

The judged test runs the alpaca_eval library's own annotator and length-controlled metric against a local
OpenAI-compatible server that always prefers the longer output. One substitution: the library downloads
`df_gamed.csv` (per-instruction difficulty + two "gamed" baselines that regularise the GLM) from the hub,
which these machines cannot reach, so the test hands it a synthetic file of the same columns. The numbers
are therefore not AlpacaEval scores; what is checked is that the library computes them and that they
follow the judge's preferences.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from smoke_config import benchmark_config, data_config, smoke

from pipeline.config import to_dict
from pipeline.data.jsonl import DataError
from pipeline.eval.judge import JudgeError, import_alpaca_eval
from pipeline.tasks import get_benchmark
from pipeline.tasks.alpaca_eval import judge_outputs, load_alpaca_eval
from pipeline.types import Prompt

DATA_DIR = os.environ.get("INTUITOR_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR or not Path(DATA_DIR, "alpaca_eval", "alpaca_eval_gpt4_baseline.json").is_file(),
    reason="INTUITOR_DATA_DIR does not hold alpaca_eval/ (see shared/data/README.md)",
)
needs_alpaca_eval = pytest.mark.skipif(
    importlib.util.find_spec("alpaca_eval") is None,
    reason="alpaca_eval is not installed (optional extra: pip install -e '.[judge]')",
)
NO_KEY_ENV = "INTUITOR_TEST_JUDGE_KEY_UNSET"


def _judge() -> dict:
    """conf/eval/alpaca_eval.yaml's judge section."""
    return to_dict(benchmark_config("alpaca_eval").judge)


@pytest.fixture(scope="module")
def prompts() -> list[Prompt]:
    return get_benchmark("alpaca_eval").load(
        benchmark_config("alpaca_eval", split="eval"), data_config(), "SYS"
    )


@needs_data
def test_loader_count_fields_and_order(prompts: list[Prompt]) -> None:
    raw = json.loads(
        Path(DATA_DIR, "alpaca_eval", "alpaca_eval_gpt4_baseline.json").read_text(encoding="utf-8")
    )
    assert len(prompts) == len(raw) == 805
    assert Counter(p.meta["dataset"] for p in prompts) == {
        "selfinstruct": 252, "oasst": 188, "koala": 156, "helpful_base": 129, "vicuna": 80,
    }  # fmt: skip
    for i in (0, 400, 804):
        p = prompts[i]
        assert p.messages == [
            {"role": "system", "content": "SYS"},
            {"role": "user", "content": raw[i]["instruction"]},
        ]
        assert p.meta == {
            "dataset": raw[i]["dataset"],
            "index": i,
            "reference_output": raw[i]["output"],
            "reference_generator": "gpt4_1106_preview",
        }
        assert p.gold is None and p.text is None and p.id == f"alpaca_eval/eval/{i}"
    assert load_alpaca_eval(None, system_prompt=None)[0].messages[0]["role"] == "user"
    assert load_alpaca_eval(None, system_prompt=smoke().model.system_prompt, limit=3)[2].meta["index"] == 2


def test_bad_record_names_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    good = {"instruction": "hi", "output": "hello", "generator": "ref", "dataset": "x"}
    path.write_text(json.dumps([good, {**good, "output": None}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"outputs\.json: record 1: lacks string field\(s\) \['output'\]"):
        load_alpaca_eval(str(path))


@needs_data
def test_grade_has_no_per_item_correctness(prompts: list[Prompt]) -> None:
    bench = get_benchmark("alpaca_eval")
    assert bench.metric == "lc_win_rate"
    verdicts = bench.grade(prompts[:3], ["a", "b", "c"], benchmark_config("alpaca_eval"))
    assert [(v.correct, v.extracted, v.source) for v in verdicts] == [(False, None, "not_judged")] * 3
    with pytest.raises(ValueError, match="3 prompts but 2 completions"):
        bench.grade(prompts[:3], ["a", "b"], benchmark_config())


@needs_data
@pytest.mark.parametrize("n", [805, 7])
def test_no_judge_saves_outputs_and_reports_no_number(prompts: list[Prompt], tmp_path: Path, n: int) -> None:
    completions = [f"answer {i}" for i in range(n)]
    result = judge_outputs(prompts[:n], completions, benchmark_config("alpaca_eval"), "my-model", tmp_path)
    assert result["status"] == "not judged"
    assert result["lc_win_rate"] is None and result["win_rate"] is None and result["n"] == n
    saved = json.loads((tmp_path / "model_outputs.json").read_text(encoding="utf-8"))
    assert len(saved) == n
    assert saved[n - 1] == {
        "instruction": prompts[n - 1].messages[-1]["content"],
        "output": f"answer {n - 1}",
        "generator": "my-model",
        "dataset": prompts[n - 1].meta["dataset"],
    }
    assert not (tmp_path / "judge").exists()


@needs_data
def test_missing_api_key_names_the_variable(
    prompts: list[Prompt], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NO_KEY_ENV, raising=False)
    judge = {**_judge(), "base_url": "http://127.0.0.1:9/v1", "api_key_env": NO_KEY_ENV}
    bench = benchmark_config("alpaca_eval", judge=judge)
    with pytest.raises(JudgeError, match=f"environment variable {NO_KEY_ENV} is not set"):
        judge_outputs(prompts[:2], ["x", "y"], bench, "m", tmp_path)
    # the outputs are kept for a later judge run even though judging failed
    assert len(json.loads((tmp_path / "model_outputs.json").read_text(encoding="utf-8"))) == 2


# ----------------------------------------------------------------------------- the real judged path

# The two outputs as alpaca_eval_clf.txt lays them out ("m" = output_1, "M" = output_2 after the
# library's own order randomisation).
_PAIR = re.compile(
    r'"model_identifier": "m",\s*"output": """(.*?)"""\s*\},\s*'
    r'\{\s*"model_identifier": "M",\s*"output": """(.*?)"""',
    re.DOTALL,
)


class _LongerIsBetter(BaseHTTPRequestHandler):
    """/chat/completions answering "m" or "M", whichever output is longer, with the top-5 logprobs the
    library's logprob_parser reads."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        pair = _PAIR.search("\n".join(m["content"] for m in body["messages"]))
        assert pair is not None, "prompt is not the alpaca_eval_clf template"
        best, other = ("m", "M") if len(pair.group(1)) >= len(pair.group(2)) else ("M", "m")

        def lp(token: str, logprob: float) -> dict[str, Any]:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        top = [lp(best, -0.001), lp(other, -7.0)]
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": best},
                    "logprobs": {"content": [{**lp(best, -0.001), "top_logprobs": top}]},
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def judge_server() -> Iterator[str]:
    _LongerIsBetter.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LongerIsBetter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def offline_glm_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthetic df_gamed.csv in place of the library's hub download (see the module docstring)."""
    import_alpaca_eval()  # first import through the pipeline (it silences the library's import warning)
    import alpaca_eval.metrics.glm_winrate as glm
    import pandas as pd

    rows = [
        {
            "model": model,
            "index": i,
            "preference": 0.5 + sign * 0.2,
            "std_delta_len": sign * 1.0,
            "instruction_difficulty": ((i % 7) - 3) / 3,
            "not_gamed_baseline": False,
        }
        for model, sign in (("gamed_long", 1), ("gamed_short", -1))
        for i in range(805)
    ]
    path = tmp_path_factory.mktemp("glm") / "df_gamed.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    monkeypatch.setattr(glm, "hf_hub_download", lambda **kwargs: str(path))


@needs_data
@needs_alpaca_eval
def test_judged_path_runs_the_library_and_follows_preferences(
    prompts: list[Prompt],
    tmp_path: Path,
    judge_server: str,
    offline_glm_data: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTUITOR_TEST_JUDGE_KEY", "sk-local-test")
    judge = {
        **_judge(),
        "base_url": judge_server,
        "model": "judge-model",
        "api_key_env": "INTUITOR_TEST_JUDGE_KEY",
    }
    bench = benchmark_config("alpaca_eval", judge=judge)
    items = prompts[100:110]
    longer = [p.meta["reference_output"] + "\n\nIn short: see above." for p in items]
    shorter = [p.meta["reference_output"][:20] for p in items]

    win = judge_outputs(items, longer, bench, "long-model", tmp_path / "long")
    assert len(_LongerIsBetter.requests) == 10
    request = _LongerIsBetter.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-local-test"
    assert request["model"] == "judge-model" and request["logprobs"] is True and request["max_tokens"] == 1
    lose = judge_outputs(items, shorter, bench, "short-model", tmp_path / "short")
    assert len(_LongerIsBetter.requests) == 20

    for result in (win, lose):
        assert result["status"] == "judged" and result["n"] == 10 and result["n_judged"] == 10
        assert 0.0 <= result["lc_win_rate"] <= 100.0 and 0.0 <= result["win_rate"] <= 100.0
    assert win["win_rate"] > 99.0 and lose["win_rate"] < 1.0
    assert win["lc_win_rate"] > 50.0 > lose["lc_win_rate"]
    annotations = json.loads((tmp_path / "long" / "judge" / "annotations.json").read_text(encoding="utf-8"))
    assert len(annotations) == 10 and {a["generator_2"] for a in annotations} == {"long-model"}
    assert all(a["preference"] > 1.99 for a in annotations)  # 2 = the model's output is preferred
    # the key never reaches a file
    assert not any(
        "sk-local-test" in f.read_text(errors="ignore") for f in tmp_path.rglob("*") if f.is_file()
    )

    # a rerun in the same folder reuses the annotator's cache: no new judge calls, same number
    again = judge_outputs(items, longer, bench, "long-model", tmp_path / "long")
    assert len(_LongerIsBetter.requests) == 20
    assert again["lc_win_rate"] == pytest.approx(win["lc_win_rate"])
