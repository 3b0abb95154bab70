"""Compose conf/ into params.yaml exactly as DVC's Hydra integration does (`dvc exp run -S ...`).

python -m pipeline.compose [override ...]      # e.g. experiment=smoke
"""

from __future__ import annotations

import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_params(output: str | Path, overrides: list[str], conf_dir: Path = CONF_DIR) -> Path:
    """Write the composition of conf_dir/config.yaml with `overrides` to `output` (YAML)."""
    # DVC's own function, so the committed params.yaml is byte-identical to what `dvc exp run` writes.
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(str(output), str(conf_dir.resolve()), None, "config", str(conf_dir.resolve()), overrides)
    return Path(output)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = compose_params("params.yaml", args)
    print(f"wrote {out} from {CONF_DIR} with overrides {args}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
