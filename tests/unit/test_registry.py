"""The one registry idiom: names resolve lazily to components, unknown names list the registered ones,
and every registry of the pipeline resolves each of its names."""

from __future__ import annotations

import sys

import pytest

from pipeline.registry import Registry
from pipeline.rewards.registry import REWARDS
from pipeline.rollout.factory import ENGINES, EVAL_ENGINES
from pipeline.tasks import BENCHMARKS, Benchmark
from pipeline.tasks.training import TRAINING_DATA


def test_a_registry_imports_a_component_on_first_use_only(tmp_path, monkeypatch) -> None:
    (tmp_path / "registry_probe_mod.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[int] = Registry("probe", {"answer": "registry_probe_mod:VALUE", "plain": 7})
    assert "registry_probe_mod" not in sys.modules
    assert sorted(reg) == ["answer", "plain"] and "answer" in reg and len(reg) == 2
    assert "registry_probe_mod" not in sys.modules  # listing names imports nothing
    assert reg["answer"] == 42 and reg["plain"] == 7
    assert "registry_probe_mod" in sys.modules
    monkeypatch.delitem(sys.modules, "registry_probe_mod")


def test_unknown_names_list_the_registered_ones() -> None:
    reg = Registry("widget", {"b": 1, "a": 2})
    with pytest.raises(KeyError, match=r"unknown widget 'c'; registered: \['a', 'b'\]"):
        reg["c"]
    reg["c"] = 3
    assert reg["c"] == 3
    del reg["c"]
    assert "c" not in reg


def test_every_registered_component_resolves() -> None:
    for name in BENCHMARKS:
        bench = BENCHMARKS[name]
        assert isinstance(bench, Benchmark) and bench.name == name
    for registry in (REWARDS, TRAINING_DATA, ENGINES, EVAL_ENGINES):
        assert len(registry) >= 2
        assert all(callable(registry[name]) for name in registry)
    assert set(ENGINES) == set(EVAL_ENGINES) == {"hf", "vllm"}
