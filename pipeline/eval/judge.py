"""AlpacaEval 2 pairwise judging through the alpaca_eval library itself (optional extra `judge`).

The library's own annotator (prompt template, output-order randomisation, logprob parser) asks an
OpenAI-compatible endpoint which of two outputs is better, and its own `get_length_controlled_winrate`
turns the preferences into the length-controlled win rate. This module only points them at the configured
endpoint and model, keeps every file they write under the evaluation's folder, and reads the numbers out.

Files written under `work_dir`: `<annotators_config>/configs.yaml` (the library's annotator config with
the judge model substituted; no key), `annotations_cache_<model>.json` (the annotator's cache, one per
judge model: a rerun after a failure does not pay for the same judgements twice), `annotations.json`,
`lc_glm_weights/`.

Needs network access to the Hugging Face hub once: the length-controlled GLM downloads the library's
precomputed `df_gamed.csv` (per-instruction difficulty) from `tatsu-lab/alpaca_eval`.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import yaml

from pipeline.atomic import write_text_atomic
from pipeline.config import JudgeConfig


class JudgeError(RuntimeError):
    """The judge cannot run: alpaca_eval missing, no API key, an unusable annotator config."""


def import_alpaca_eval() -> Any:
    """The alpaca_eval package, imported lazily (it pulls pandas, datasets, openai, sklearn)."""
    root = logging.getLogger()
    level = root.level
    try:
        with warnings.catch_warnings():
            # alpaca_eval 0.6.6 imports pkg_resources, which warns about its own deprecation.
            warnings.simplefilter("ignore", UserWarning)
            import alpaca_eval
            import alpaca_eval.annotators
            import alpaca_eval.constants
            import alpaca_eval.metrics
    except ImportError as e:
        raise JudgeError(
            f"AlpacaEval judging needs the alpaca_eval library: pip install -e '.[judge]' ({e})"
        ) from e
    finally:
        # Importing its annotators sets the root logger to INFO, which would flood the caller's logs.
        root.setLevel(level)
    return alpaca_eval


def write_annotator_config(judge: JudgeConfig, work_dir: Path) -> Path:
    """The library's annotator config with the judge model substituted, written to work_dir; its path."""
    ae = import_alpaca_eval()
    library_dir = Path(ae.constants.EVALUATORS_CONFIG_DIR)
    source = library_dir / judge.annotators_config / "configs.yaml"
    if not source.is_file():
        available = sorted(p.name for p in library_dir.iterdir() if (p / "configs.yaml").is_file())
        raise JudgeError(
            f"judge.annotators_config={judge.annotators_config!r}: not in alpaca_eval; {available}"
        )
    configs = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(configs, dict) or len(configs) != 1:
        raise JudgeError(f"{source}: expected exactly one annotator, got {list(configs or {})}")
    for config in configs.values():
        config.setdefault("completions_kwargs", {})["model_name"] = judge.model
        # The copy lives outside the library: its template path must not depend on where it is read from.
        config["prompt_template"] = str(library_dir / config["prompt_template"])
    # The folder name is the annotator's name in the annotations (and the library's metric asserts one).
    target = work_dir / judge.annotators_config / "configs.yaml"
    write_text_atomic(target, yaml.safe_dump(configs, sort_keys=False))
    return target


def judge_pairwise(
    model_outputs: list[dict[str, Any]],
    reference_outputs: list[dict[str, Any]],
    indices: list[int],
    judge: JudgeConfig,
    api_key: str,
    work_dir: Path,
) -> dict[str, Any]:
    """Judge model vs reference outputs (same instructions, same order) and compute the metrics.

    `indices`: each instruction's position in the 805-item AlpacaEval set, which the length-controlled GLM
    uses to look up the instruction's difficulty (so a subset is scored like the same items of the full set).
    """
    if not (len(model_outputs) == len(reference_outputs) == len(indices)) or not model_outputs:
        raise ValueError(
            f"judge_pairwise: {len(model_outputs)} model outputs, {len(reference_outputs)} references, "
            f"{len(indices)} indices (need the same non-zero count)"
        )
    ae = import_alpaca_eval()
    import pandas as pd  # lazy: an alpaca_eval dependency, not one of ours

    config_path = write_annotator_config(judge, work_dir)
    cache = work_dir / f"annotations_cache_{re.sub(r'[^A-Za-z0-9._-]', '_', judge.model)}.json"
    annotator = ae.annotators.PairwiseAnnotator(annotators_config=str(config_path), caching_path=str(cache))
    client_kwargs = {
        # The key and endpoint go to the OpenAI client through the library's decoding kwargs, so they are
        # never written to a file. A client-config path that does not exist makes the library build its
        # client from exactly these, ignoring any OPENAI_CLIENT_CONFIG_PATH / OPENAI_API_BASE of the caller.
        "openai_api_keys": [api_key],
        "openai_api_base": judge.base_url,
        "openai_organization_ids": None,
        "client_config_path": str(work_dir / "no-client-config.yaml"),
        # The templates are ChatML: always the chat endpoint, whatever the model's name looks like.
        "requires_chatml": True,
    }
    annotations = annotator.annotate_head2head(
        outputs_1=reference_outputs, outputs_2=model_outputs, is_ordered=True, **client_kwargs
    )
    position = {o["instruction"]: i for o, i in zip(model_outputs, indices, strict=True)}
    df = pd.DataFrame(annotations)
    df.index = [position[str(instruction)] for instruction in df["instruction"]]
    write_text_atomic(work_dir / "annotations.json", df.to_json(orient="records", indent=2))
    with warnings.catch_warnings():
        # The library's GLM fit passes scikit-learn arguments that newer releases deprecate (FutureWarning).
        warnings.simplefilter("ignore", FutureWarning)
        metrics = ae.metrics.get_length_controlled_winrate(df, save_weights_dir=work_dir / "lc_glm_weights")
    n_judged = int(df["preference"].notna().sum())
    return {
        "lc_win_rate": _number(metrics["length_controlled_winrate"]),
        "lc_standard_error": _number(metrics.get("lc_standard_error")),
        "win_rate": _number(metrics["win_rate"]),
        "standard_error": _number(metrics.get("standard_error")),
        "discrete_win_rate": _number(metrics.get("discrete_win_rate")),
        "n_wins": _number(metrics.get("n_wins")),
        "n_draws": _number(metrics.get("n_draws")),
        "n_total": _number(metrics.get("n_total")),
        "n_judged": n_judged,
        "avg_length": sum(len(o["output"]) for o in model_outputs) / len(model_outputs),
    }


def _number(value: Any) -> float | None:
    """A JSON-safe float (numpy scalars converted; NaN, e.g. a standard error of one item, becomes None)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
