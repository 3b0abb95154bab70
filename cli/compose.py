"""Compose conf/ into params.yaml, as `dvc exp run -S` does.

python -m cli.compose [override ...]      # e.g. experiment=smoke
"""

from __future__ import annotations

import sys

from pipeline.config.compose import CONF_DIR, compose_params


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = compose_params("params.yaml", args)
    print(f"wrote {out} from {CONF_DIR} with overrides {args}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
