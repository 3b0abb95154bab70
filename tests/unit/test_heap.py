"""pipeline/heap.py: with the heap kept, large tensors allocated and freed in a loop settle on mapped
pages (no page faults, no growth); without, every 4 KiB page faults again in every cycle. Each case
runs in its own interpreter: mallopt settings are process-wide and cannot be undone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB), so without retention it is mmapped.
_PROGRAM = """
import json, resource, sys
import torch
from pipeline.heap import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
n = 16 * 2**20  # float32 elements: 64 MiB
faults = []
for _ in range(16):  # allocated, touched, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(n).fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults}))
"""
PAGES = 64 * 2**20 // 4096


def _faults(mode: str) -> dict:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode], cwd=root, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _thp_always() -> bool:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.exists() and "[always]" in path.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc (Linux)")
def test_a_freed_large_block_is_reused_without_page_faults() -> None:
    kept = _faults("retain")
    assert kept["applied"] is True
    # The first cycles may each leave a hole (glibc keeps the small split-off head of an aligned block
    # in its per-thread cache, 7 per size, which blocks merging: measured, the last faulting cycle was
    # the 7th to 10th); then freed blocks are reused as they are.
    assert sum(kept["faults"][-5:]) < PAGES // 20, kept
    if _thp_always():
        pytest.skip("transparent huge pages always on: the peer faults 2 MiB pages, nothing to compare")
    # The peer: the same allocations fault every page again, in every cycle (what retention removes).
    assert min(_faults("plain")["faults"][-5:]) > PAGES // 2
