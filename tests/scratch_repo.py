"""A scratch git + DVC copy of the project for tests that run the real pipeline (`dvc repro`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.config.compose import compose_params

ROOT = Path(__file__).resolve().parents[1]


def run_checked(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; fail the test with its output's tail if it fails; returns stdout + stderr."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def scratch_pipeline(
    dst: Path, overrides: tuple[str, ...] = ("experiment=smoke",)
) -> tuple[Path, dict[str, str]]:
    """Copy the project's tracked (and new, unignored) files to `dst`, compose params.yaml with
    `overrides`, commit it to a fresh git repo; returns (dst, the environment to run dvc with)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    (dst / "dvc.lock").unlink(missing_ok=True)
    compose_params(dst / "params.yaml", list(overrides), conf_dir=dst / "conf")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.setdefault("INTUITOR_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    env.pop("DVC_EXP_NAME", None)
    env.pop("INTUITOR_FAULT", None)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@local", "commit", "-qm", "smoke"],
    ):
        run_checked(cmd, dst, env)
    return dst, env
