"""prepare_model's GGUF dequantization with one parse of the file (and one tensor-name map) vs
transformers' three parses (and a name map rebuilt at every submodule).

`pipeline.modeling.models.dequantize_gguf` loads the embedded SmolLM2 GGUF's config, weights and
tokenizer through transformers, which builds a `gguf.GGUFReader` (a full parse of the file, every
tokenizer string one element at a time) for each, and maps the weights' names through a
`gguf.TensorNameMap` it rebuilds at every submodule; `one_gguf_parse` makes them share one reader and
one name map. This
dequantizes into two temporary folders, with and without it (the peer replaces it by a no-op), rounds
alternating, and checks both wrote the same bytes.

    make setup
    .venv/bin/python bench/gguf_parse.py --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from pipeline.modeling import models

    gguf = models.embedded_gguf_path("smollm2-135m-instruct")
    shared = models.one_gguf_parse
    times: dict[str, list[float]] = {"one_parse": [], "three_parses": []}
    with tempfile.TemporaryDirectory(prefix="gguf_parse_") as tmp:
        out = {mode: Path(tmp) / mode for mode in times}
        for r in range(args.rounds):
            for mode in list(times) if r % 2 == 0 else list(times)[::-1]:
                models.one_gguf_parse = shared if mode == "one_parse" else contextlib.nullcontext
                t0 = time.perf_counter()
                models.dequantize_gguf(gguf, out[mode])
                times[mode].append(time.perf_counter() - t0)
                print(f"round {r + 1} {mode}: {times[mode][-1]:.1f} s", flush=True)
        models.one_gguf_parse = shared
        names = sorted(p.name for p in out["one_parse"].iterdir())
        same = names == sorted(p.name for p in out["three_parses"].iterdir()) and all(
            filecmp.cmp(out["one_parse"] / n, out["three_parses"] / n, shallow=False) for n in names
        )
    ratios = [t / o for t, o in zip(times["three_parses"], times["one_parse"], strict=True)]
    print(
        f"SUMMARY gguf_parse one_parse_s={statistics.median(times['one_parse']):.1f} "
        f"three_parses_s={statistics.median(times['three_parses']):.1f} "
        f"ratio={statistics.median(ratios):.2f} same_files={same}"
    )


if __name__ == "__main__":
    main()
