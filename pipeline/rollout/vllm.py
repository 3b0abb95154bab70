"""Rollouts with a colocated vLLM engine: one `vllm.LLM` per training process, sharing its GPU.

The engine returns exactly what `HFRolloutEngine.generate` returns (same prompt rendering, padding,
first-EOS mask, text decoding and stop-string cut), so the trainer cannot tell the two apart.

Lifecycle of one training step (sleep mode on):
    asleep -> sync_weights (wake weights, load the policy's tensors, reset the prefix cache)
           -> generate (wake the KV cache, sample, sleep again) -> the training pass has the memory back.
`generate` syncs from the policy it was built with before sampling, so rollouts are on-policy even
if a caller forgets `sync_weights` (with several optimizer steps per rollout, only the last matters).

vllm is imported only when an engine is built: the CPU path and the unit tests never need it. The pure
parts (sampling parameters, weight names, output conversion) are plain functions tested without it.
vLLM API used (read in the vllm 0.33.0 wheel): LLM(..., distributed_executor_backend="external_launcher",
enable_sleep_mode, generation_config), LLM.generate([{"prompt_token_ids"}], [SamplingParams]),
LLM.apply_model, LLM.sleep(level), LLM.wake_up(tags), LLM.reset_prefix_cache.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from pipeline.config import ConfigError, SamplingConfig
from pipeline.models import prompt_ids as render_prompt
from pipeline.rollout.base import completion_mask
from pipeline.rollout.hf import cut_at_stop
from pipeline.rollout.sampling import request_seed
from pipeline.types import Prompt, RolloutGroup

# Wrappers that prefix parameter names: removed wherever they occur (FSDP1 and activation
# checkpointing wrap nested modules; torch.compile may wrap a submodule).
_WRAPPER_INFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
# DDP / DeepSpeed engines wrap the whole model as `.module`: only a leading prefix is theirs.
_LEADING_PREFIX = "module."


def vllm_unavailable_reason() -> str | None:
    """Why `rollout.engine=vllm` cannot run here (one message naming the fix), or None if it can."""
    missing = []
    if importlib.util.find_spec("vllm") is None:
        missing.append("the vllm package is not installed")
    if not torch.cuda.is_available():
        missing.append("CUDA is not available")
    if not missing:
        return None
    return (
        f"rollout.engine=vllm needs vllm on a CUDA GPU, but {' and '.join(missing)}: install the gpu "
        "extra on a GPU machine (pip install -e '.[gpu]') or select rollout=hf"
    )


def _import_vllm() -> Any:
    reason = vllm_unavailable_reason()
    if reason is not None:
        raise ConfigError(reason)
    import vllm

    return vllm


# ---------------------------------------------------------------------------- sampling parameters
# vllm.SamplingParams fields that would alter the logits or the sampled distribution, at their
# neutral values (set explicitly: the defaults of one version are no contract of the next).
NEUTRAL_SAMPLING: dict[str, Any] = {
    "top_k": -1,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "min_tokens": 0,
}
# LLM(...) arguments that would bring in processors or generation defaults: refused in llm_kwargs.
ALTERING_LLM_KWARGS = ("generation_config", "override_generation_config", "logits_processors")


def check_llm_kwargs(llm_kwargs: dict[str, Any]) -> None:
    """rollout.llm_kwargs may tune the engine, never what it samples from."""
    for key in ALTERING_LLM_KWARGS:
        if key in llm_kwargs:
            raise ConfigError(
                f"rollout.llm_kwargs.{key}: not allowed; rollouts sample from softmax(logits / "
                "temperature) with top-p only (the scoring pass and the recorded self-certainty assume it)"
            )


def sampling_params_kwargs(
    sampling: SamplingConfig,
    seed: int,
    prompt_index: int,
    sample_index: int,
    stop_token_ids: Sequence[int] = (),
) -> dict[str, Any]:
    """`vllm.SamplingParams` keyword arguments for one completion, read from the config HF reads.

    One request per completion (n=1) with its own seed: vLLM's way of seeding the children of an
    n > 1 request is an internal detail, and per-completion seeds make sample j of prompt i the same
    whatever else is in the batch.
    """
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": sampling.max_new_tokens,
        "stop": list(sampling.stop),
        # The model's EOS ids, also those only listed in generation_config (HF stops on them too).
        "stop_token_ids": list(stop_token_ids),
        # Everything but temperature and top-p explicitly off, as in the HF engine: the paper samples
        # from softmax(z / T) restricted to the nucleus, which the scoring pass's log-probs assume.
        **NEUTRAL_SAMPLING,
    }
    if sampling.temperature <= 0:
        # Greedy: no randomness, hence no seed.
        kwargs.update(temperature=0.0, top_p=1.0, seed=None)
    else:
        kwargs.update(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=request_seed(seed, prompt_index, sample_index),
        )
    return kwargs


def truncate_prompt(ids: list[int], max_prompt_tokens: int | None) -> list[int]:
    """Left truncation, as the HF engine does: keeps the question and the opened assistant turn."""
    return ids if max_prompt_tokens is None else ids[-max_prompt_tokens:]


# ---------------------------------------------------------------------------- weight names
def vllm_weight_name(name: str) -> str:
    """The Hugging Face name vLLM's `load_weights` expects for a (possibly wrapped) parameter name."""
    for infix in _WRAPPER_INFIXES:
        name = name.replace(infix, "")
    while name.startswith(_LEADING_PREFIX):
        name = name[len(_LEADING_PREFIX) :]
    return name


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model inside DDP / DeepSpeed (`.module`) and torch.compile (`._orig_mod`)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def vllm_named_weights(
    named: Iterable[tuple[str, torch.Tensor]], tie_word_embeddings: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    """(vLLM name, tensor) pairs; a tied `lm_head.weight` is skipped (vLLM ties it to the embeddings).

    Lazy, so a gathered (ZeRO-3) parameter lives only while vLLM copies it.
    """
    seen: set[str] = set()
    for raw, tensor in named:
        name = vllm_weight_name(raw)
        if tie_word_embeddings and name == "lm_head.weight":
            continue
        if name in seen:
            raise ValueError(f"two parameters map to the vLLM weight {name!r} (last: {raw!r})")
        seen.add(name)
        yield name, tensor


def _full_parameters(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Full (unsharded) detached parameters: FSDP2 DTensors are gathered, ZeRO-3 ones too."""
    for name, param in model.named_parameters():
        gathered: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if hasattr(param, "ds_id"):  # a DeepSpeed ZeRO-3 partition: gather it for the copy
            import deepspeed

            gathered = deepspeed.zero.GatheredParameters([param])
        with gathered:
            tensor = param.detach()
            if hasattr(tensor, "full_tensor"):  # FSDP2 DTensor shard
                tensor = tensor.full_tensor()
            yield name, tensor


def policy_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's current weights under the names vLLM loads, whatever wraps the model."""
    config = getattr(unwrap_model(model), "config", None)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    return vllm_named_weights(_full_parameters(model), tied)


# ---------------------------------------------------------------------------- output conversion
def eos_token_ids(generation_config: Any, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The model's EOS ids (generation_config) plus the tokenizer's, as the HF engine collects them."""
    eos = getattr(generation_config, "eos_token_id", None)
    ids = list(eos) if isinstance(eos, list | tuple) else [eos] if eos is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model and tokenizer define no EOS token: completions could never end")
    return ids


def rows_to_group(
    prompt: Prompt,
    prompt_ids: list[int],
    rows: list[list[int]],
    *,
    tokenizer: PreTrainedTokenizerBase,
    pad_id: int,
    eos_ids: list[int],
    stop: Sequence[str],
) -> RolloutGroup:
    """One RolloutGroup from G completions' token ids, built exactly as the HF engine builds it."""
    # Cut after the first EOS: anything later is not part of the sample.
    rows = [next((r[: k + 1] for k, t in enumerate(r) if t in eos_ids), r) for r in rows]
    n = len(rows)
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((n, width), pad_id, dtype=torch.long)  # [G, C]
    for j, r in enumerate(rows):
        ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
    mask = completion_mask(ids, eos_ids)  # [G, C]
    for j, r in enumerate(rows):
        mask[j, len(r) :] = 0  # an empty row must not count its padding as content
    texts = [
        cut_at_stop(tokenizer.decode(ids[j][mask[j].bool()], skip_special_tokens=True), list(stop))
        for j in range(n)
    ]
    return RolloutGroup(prompt, torch.tensor(prompt_ids, dtype=torch.long), ids, mask, texts)


def outputs_to_groups(
    prompts: list[Prompt],
    prompt_ids: list[list[int]],
    outputs: Sequence[Any],
    n: int,
    *,
    tokenizer: PreTrainedTokenizerBase,
    pad_id: int,
    eos_ids: list[int],
    stop: Sequence[str] = (),
) -> list[RolloutGroup]:
    """vLLM request outputs (prompt-major; `.prompt_token_ids`, `.outputs[j].token_ids`) -> groups.

    Accepts one request per completion or one request of n completions per prompt: the completions
    are flattened in order and completion f belongs to prompt f // n, as in the HF engine.
    """
    flat: list[tuple[Any, list[int]]] = [
        (req.prompt_token_ids, list(out.token_ids)) for req in outputs for out in req.outputs
    ]
    if len(flat) != len(prompts) * n:
        raise ValueError(f"vLLM returned {len(flat)} completions for {len(prompts)} prompts x {n}")
    for f, (got, _) in enumerate(flat):
        # A reordered or mismatched output would silently pair completions with the wrong prompt.
        if got is not None and list(got) != prompt_ids[f // n]:
            raise ValueError(f"vLLM output {f} belongs to another prompt than {prompts[f // n].id!r}")
    return [
        rows_to_group(
            prompt,
            prompt_ids[i],
            [row for _, row in flat[i * n : (i + 1) * n]],
            tokenizer=tokenizer,
            pad_id=pad_id,
            eos_ids=eos_ids,
            stop=stop,
        )
        for i, prompt in enumerate(prompts)
    ]


# ---------------------------------------------------------------------------- the engine
def _set_launcher_env() -> None:
    """torch.distributed variables vLLM's external launcher reads; `accelerate launch` sets them,
    a plain single-process run gets a world of one."""
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])


class VLLMRolloutEngine:
    """Samples with a colocated vLLM; its weights follow `policy` (synced before every rollout).

    vLLM schedules its own batches (at most `max_num_seqs` sequences at once), so
    `SamplingConfig.batch_size` is not read here; self-certainty is not recorded (vLLM exposes only
    top-k log-probs), so groups carry `self_certainty=None` and the scoring pass computes it.
    """

    def __init__(
        self,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        policy: torch.nn.Module | None = None,
        revision: str | None = None,
        dtype: str = "bfloat16",
        seed: int = 0,
        gpu_memory_utilization: float = 0.3,
        enable_sleep_mode: bool = True,
        sleep_level: int = 1,
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        show_progress: bool = True,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if sleep_level not in (1, 2):
            raise ConfigError(f"rollout.sleep_level: must be 1 or 2, got {sleep_level}")
        check_llm_kwargs(llm_kwargs or {})
        vllm = _import_vllm()
        self._sampling_params_cls = vllm.SamplingParams
        self.tokenizer = tokenizer
        self.policy = policy
        self.show_progress = show_progress
        self.enable_sleep_mode = enable_sleep_mode
        self.sleep_level = sleep_level
        generation_config = (
            getattr(unwrap_model(policy), "generation_config", None) if policy is not None else None
        )
        self.eos_ids = eos_token_ids(generation_config, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        _set_launcher_env()
        kwargs: dict[str, Any] = {
            "model": model_path,
            "revision": revision,
            "dtype": dtype,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enable_sleep_mode": enable_sleep_mode,
            "max_model_len": max_model_len,
            "tensor_parallel_size": 1,
            # In-process engine on this process's GPU (LOCAL_RANK): the policy's tensors can be
            # loaded into it directly, without serialising them to an engine subprocess.
            "distributed_executor_backend": "external_launcher",
            # Sample only with what sampling_params_kwargs sets, never generation_config.json defaults.
            "generation_config": "vllm",
        }
        if max_num_seqs is not None:
            kwargs["max_num_seqs"] = max_num_seqs
        kwargs.update(llm_kwargs or {})
        self.llm = vllm.LLM(**kwargs)
        # Tags ("weights", "kv_cache") currently released by sleep mode.
        self._asleep: set[str] = set()
        self._sleep()  # free the GPU for whatever the trainer builds next (reference model, optimizer)

    def _sleep(self) -> None:
        if self.enable_sleep_mode and not self._asleep:
            self.llm.sleep(level=self.sleep_level)
            self._asleep = {"weights", "kv_cache"}

    def _wake(self, tags: Sequence[str]) -> None:
        tags = [t for t in tags if t in self._asleep]
        if not tags:
            return
        torch.cuda.empty_cache()  # hand the training pass's cached blocks back before vLLM reallocates
        self.llm.wake_up(tags=tags)
        self._asleep.difference_update(tags)

    @torch.no_grad()
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load `model`'s current weights into vLLM (after an optimizer step, before sampling)."""
        self._wake(["weights"])
        weights = policy_weights(model)
        # apply_model runs the function on vLLM's model in this process (external launcher); its
        # load_weights maps HF names onto vLLM's fused layers (qkv_proj, gate_up_proj).
        self.llm.apply_model(lambda vllm_model: vllm_model.load_weights(weights))
        # Cached prompt KV was computed with the old weights.
        self.llm.reset_prefix_cache()

    @torch.no_grad()
    def generate(
        self, prompts: list[Prompt], n: int, sampling: SamplingConfig, seed: int, first_prompt: int = 0
    ) -> list[RolloutGroup]:
        if self.policy is not None:
            self.sync_weights(self.policy)
        if self.sleep_level == 2 and "weights" in self._asleep:
            raise RuntimeError("sleep level 2 discarded vLLM's weights: call sync_weights(model) first")
        prompt_ids = [
            truncate_prompt(render_prompt(self.tokenizer, p), sampling.max_prompt_tokens) for p in prompts
        ]
        # One request per completion, prompt-major, so a group's completions stay contiguous.
        requests = [{"prompt_token_ids": prompt_ids[i]} for i in range(len(prompts)) for _ in range(n)]
        params = [
            self._sampling_params_cls(
                **sampling_params_kwargs(sampling, seed, first_prompt + i, j, self.eos_ids)
            )
            for i in range(len(prompts))
            for j in range(n)
        ]
        self._wake(["weights", "kv_cache"])
        try:
            outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=self.show_progress)
        finally:
            self._sleep()
        return outputs_to_groups(
            prompts,
            prompt_ids,
            outputs,
            n,
            tokenizer=self.tokenizer,
            pad_id=self.pad_id,
            eos_ids=self.eos_ids,
            stop=sampling.stop,
        )
