"""Rollouts with Hugging Face `generate`: the CPU engine (and a GPU fallback without vLLM)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import (
    Cache,
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StaticCache,
)

from pipeline.config import SamplingConfig
from pipeline.modeling.certainty import certainty_and_entropy
from pipeline.modeling.models import prompt_ids as render_prompt
from pipeline.modeling.precision import generation_precision
from pipeline.modeling.prompt_cache import can_share, position_ids_from_mask, select_rows, shared_prompts
from pipeline.rollout.base import completion_mask
from pipeline.rollout.sampling import SeededSampler, request_seed
from pipeline.types import Prompt, RolloutGroup

logger = logging.getLogger(__name__)


# generation_config fields from which `generate` builds logits processors or sampling warpers, with
# the values that leave the logits alone (transformers 5.20, GenerationMixin._get_logits_processor).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "guidance_scale": (None, 1, 1.0),
    "sequence_bias": (None,),
    "encoder_repetition_penalty": (None, 1.0),
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "remove_invalid_values": (None, False),
    "exponential_decay_length_penalty": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "watermarking_config": (None,),
    "renormalize_logits": (None, False),
    "do_sample": (None, False),
    "num_beams": (None, 1),
    "temperature": (None, 1.0),
    "top_k": (None, 0),
    "top_p": (None, 1.0),
    "min_p": (None,),
    "typical_p": (None, 1.0),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "top_h": (None,),
}


def altering_generation_fields(config: GenerationConfig) -> dict[str, Any]:
    """The fields of a model's generation_config that would make `generate` alter the logits or the
    sampling (repetition_penalty, suppress_tokens, min_new_tokens, top_k, ...), with their values."""
    found = {}
    for key, neutral in _NEUTRAL.items():
        value = getattr(config, key, None)
        if not any(value is v or (v is not None and value == v) for v in neutral):
            found[key] = value
    return found


@contextlib.contextmanager
def raw_logits_generation(model: PreTrainedModel) -> Iterator[None]:
    """`generate` without any logits processor from `model.generation_config`.

    generate() fills every field its caller leaves unset (None) from the model's generation_config, and
    builds processors from them before the caller's own (repetition_penalty, no_repeat_ngram_size,
    suppress_tokens, bad_words_ids, sequence_bias, min_new_tokens, ...). An unset field cannot be
    passed as "off", so the model's config is swapped for an empty one for the call: rollouts sample
    from softmax(z / T) with top-p only, and the recorded self-certainty reads the raw logits (a
    suppressed token's -inf would make KL(U || p) infinite).
    """
    saved = model.generation_config
    model.generation_config = GenerationConfig(
        bos_token_id=saved.bos_token_id, eos_token_id=saved.eos_token_id, pad_token_id=saved.pad_token_id
    )
    try:
        yield
    finally:
        model.generation_config = saved


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, P] ids left-padded with pad_id, and the [n, P] attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def cut_at_stop(text: str, stop: list[str]) -> str:
    """`text` up to the earliest occurrence of any stop string (the stop string itself removed)."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(cuts)] if cuts else text


class CertaintyRecorder(LogitsProcessor):
    """Records KL(U || p) (and optionally the entropy of p) of every generation step from the logits
    `generate` sees, returns them unchanged.

    User processors run before the sampling warpers (temperature, top-p), so these are the raw logits:
    self-certainty comes for free during generation, without a second forward pass. They are the
    current policy's logits at each completion position, i.e. what the scoring pass would recompute.
    `inv_temperature` scales the logits first (the trainer's sc_temperature_scaled option).
    """

    def __init__(self, inv_temperature: float = 1.0, entropy: bool = False) -> None:
        self.inv_temperature = inv_temperature
        self.entropy = entropy
        self.steps: list[torch.Tensor] = []  # each [batch] float64
        self.entropy_steps: list[torch.Tensor] = []  # each [batch] float64

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        certainty, entropy = certainty_and_entropy(scores, self.inv_temperature)  # [batch] each
        self.steps.append(certainty.cpu())
        if self.entropy:
            self.entropy_steps.append(entropy.cpu())
        return scores

    def per_token(self) -> torch.Tensor:
        """[batch, steps] self-certainty of each generated position."""
        return torch.stack(self.steps, dim=1) if self.steps else torch.zeros(0, 0, dtype=torch.float64)

    def per_token_entropy(self) -> torch.Tensor:
        """[batch, steps] entropy of each generated position (recorded with entropy=True)."""
        if not self.entropy_steps:
            return torch.zeros(0, 0, dtype=torch.float64)
        return torch.stack(self.entropy_steps, dim=1)


class HFRolloutEngine:
    """Samples with `model.generate` on the policy itself, so weights never need syncing."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        show_progress: bool = True,
        record_certainty: bool = False,
        record_token_scores: bool = False,
        certainty_temperature: float = 1.0,
        synced: bool = False,
    ) -> None:
        self.model = model
        # Keep calling the model until every process's batch is done (ZeRO-3 gathers weights per call).
        self.synced = synced
        self.tokenizer = tokenizer
        self.show_progress = show_progress
        # Fill RolloutGroup.self_certainty from the generation logits (used by evaluation).
        self.record_certainty = record_certainty
        # Fill RolloutGroup.token_scores (per-token self-certainty and entropy, logits divided by
        # certainty_temperature): the trainer's reward and metrics then need no scoring pass.
        self.record_token_scores = record_token_scores
        self.certainty_temperature = certainty_temperature
        eos = model.generation_config.eos_token_id
        eos_ids = list(eos) if isinstance(eos, list | tuple) else [eos] if eos is not None else []
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(tokenizer.eos_token_id)
        if not eos_ids:
            raise ValueError("the model and tokenizer define no EOS token: completions could never end")
        self.eos_ids = eos_ids
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
        if altered := altering_generation_fields(model.generation_config):
            logger.warning(
                "the model's generation_config sets %s: ignored (rollouts and evaluation sample from "
                "softmax(logits / temperature) with top-p only, as the paper)",
                ", ".join(f"{k}={v!r}" for k, v in sorted(altered.items())),
            )

    def sync_weights(self, model: torch.nn.Module) -> None:
        if model is not self.model:
            raise ValueError("HFRolloutEngine samples from the policy object it was built with")

    @torch.no_grad()
    def generate(
        self, prompts: list[Prompt], n: int, sampling: SamplingConfig, seed: int, first_prompt: int = 0
    ) -> list[RolloutGroup]:
        prompt_ids = [render_prompt(self.tokenizer, p) for p in prompts]
        if sampling.max_prompt_tokens is not None:
            # Left truncation keeps the end of the prompt: the question and the opened assistant turn.
            prompt_ids = [ids[-sampling.max_prompt_tokens :] for ids in prompt_ids]
        # One request per completion, prompt-major, so a group's completions stay contiguous; each has
        # its own seed from the prompt's global index, so batching and sharding change nothing.
        requests = [(i, j) for i in range(len(prompts)) for j in range(n)]
        outputs: list[list[int]] = []
        certainty: list[float] = []
        token_sc: list[torch.Tensor] = []  # per completion: [steps] self-certainty, entropy (recorded)
        token_ent: list[torch.Tensor] = []
        bs = max(1, sampling.batch_size)
        batches = range(0, len(requests), bs)
        bar = tqdm(batches, desc="rollout", unit="batch", disable=not self.show_progress or len(batches) < 2)
        for start in bar:
            chunk = requests[start : start + bs]
            seeds = [request_seed(seed, first_prompt + i, j) for i, j in chunk]
            rows, sc, tok_sc, tok_ent = self._generate_batch(
                [prompt_ids[i] for i, _ in chunk], sampling, seeds
            )
            outputs.extend(rows)
            certainty.extend(sc)
            token_sc.extend(tok_sc)
            token_ent.extend(tok_ent)
        groups = []
        for i, prompt in enumerate(prompts):
            rows = outputs[i * n : (i + 1) * n]
            width = max(1, max(len(r) for r in rows))
            ids = torch.full((n, width), self.pad_id, dtype=torch.long)
            for j, r in enumerate(rows):
                ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask = completion_mask(ids, self.eos_ids)
            # An empty row (nothing generated) must not count its padding as content.
            for j, r in enumerate(rows):
                mask[j, len(r) :] = 0
            texts = [
                cut_at_stop(
                    self.tokenizer.decode(ids[j][mask[j].bool()], skip_special_tokens=True), sampling.stop
                )
                for j in range(n)
            ]
            sc = torch.tensor(certainty[i * n : (i + 1) * n]) if self.record_certainty else None
            scores = None
            if self.record_token_scores:
                scores = (torch.zeros(n, width), torch.zeros(n, width))
                for j in range(n):
                    k = i * n + j
                    scores[0][j, : token_sc[k].numel()] = token_sc[k]
                    scores[1][j, : token_ent[k].numel()] = token_ent[k]  # 0 past the cut = the mask
            groups.append(RolloutGroup(prompt, torch.tensor(prompt_ids[i]), ids, mask, texts, sc, scores))
        return groups

    def _prefill_shared(
        self, ids: torch.Tensor, attn: torch.Tensor, static: bool, max_length: int
    ) -> Cache | None:
        """A KV cache holding every row's prompt but its last token, each distinct prompt run once
        (a group's G rows share one prefill); None where no prompt repeats or the model's cache layers
        cannot be shared. Under synced_gpus it is always built: every process makes the same calls."""
        if ids.shape[1] < 2:
            return None
        first, inverse = shared_prompts(ids, attn, ids.shape[1])
        if first.numel() == ids.shape[0] and not self.synced:
            return None
        config = self.model.config
        cache: Cache = (
            StaticCache(config=config, max_cache_len=max_length) if static else DynamicCache(config=config)
        )
        if not can_share(cache):
            return None
        device = next(self.model.parameters()).device
        mask = attn[first, :-1].to(device)  # [U, P - 1]; generate runs the last prompt token itself
        self.model.get_decoder()(
            input_ids=ids[first, :-1].to(device),
            attention_mask=mask,
            position_ids=position_ids_from_mask(mask),
            past_key_values=cache,
            use_cache=True,
        )
        select_rows(cache, inverse)  # [U, ...] -> [n, ...]
        return cache

    def _generate_batch(
        self, rows: list[list[int]], sampling: SamplingConfig, seeds: list[int]
    ) -> tuple[list[list[int]], list[float], list[torch.Tensor], list[torch.Tensor]]:
        """Completions (cut after the first EOS); if recording, their mean self-certainty and their
        per-token self-certainty and entropy ([length] each)."""
        device = next(self.model.parameters()).device
        if torch.is_autocast_enabled(device.type) and generation_precision("bf16", device.type) == "no":
            # The rollout leaves the trainer's autocast (on CPU: see generation_precision).
            with torch.autocast(device.type, enabled=False):
                return self._generate_batch(rows, sampling, seeds)
        ids, attn = left_pad(rows, self.pad_id)
        kwargs = {
            # Always greedy over what the processors return: SeededSampler turns it into sampling.
            "do_sample": False,
            "max_new_tokens": sampling.max_new_tokens,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
        }
        # (Not under autocast: the cache is allocated in the weights' dtype, autocast writes bf16.)
        # A preallocated KV cache: the default one grows by torch.cat every step, which at long
        # contexts is most of a CPU decode step (measured 4x slower per step at 800-token prompts).
        static = device.type == "cpu" and not torch.is_autocast_enabled("cpu")
        max_length = ids.shape[1] + sampling.max_new_tokens
        cache = self._prefill_shared(ids, attn, static, max_length)
        if cache is None and static:
            # Sized to this batch: generate's own static cache is as long as the longest any earlier
            # call of the process needed (transformers keeps `_previous_max_cache_length`), and attention
            # over a longer masked cache can round differently (and costs more): a batch's numbers would
            # depend on what the process ran before, and a resumed evaluation is a fresh process.
            cache = StaticCache(config=self.model.config, max_cache_len=max_length)
        if cache is not None:
            kwargs["past_key_values"] = cache
        if self.synced:
            kwargs["synced_gpus"] = True
        if sampling.stop:
            # HF stops a row once its decoded tail ends with a stop string (needs the tokenizer).
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        tokens = self.record_token_scores
        recorder = CertaintyRecorder(1.0 / self.certainty_temperature if tokens else 1.0, entropy=tokens)
        processors = LogitsProcessorList()
        if self.record_certainty or tokens:
            processors.append(recorder)  # first: it must see the raw logits
        if sampling.temperature > 0:
            processors.append(SeededSampler(seeds, ids.shape[1], sampling.temperature, sampling.top_p))
        with raw_logits_generation(self.model):
            out = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=attn.to(device),
                logits_processor=processors,
                **kwargs,
            )
        completions = out[:, ids.shape[1] :].cpu()
        per_token = recorder.per_token()  # [batch, steps]
        per_token_entropy = recorder.per_token_entropy()
        result, certainty, token_sc, token_ent = [], [], [], []
        for i, row in enumerate(completions.tolist()):
            # Cut after the first EOS: what generate pads with afterwards is not part of the sample.
            cut = next((k + 1 for k, t in enumerate(row) if t in self.eos_ids), len(row))
            result.append(row[:cut])
            if self.record_certainty:
                certainty.append(float(per_token[i, :cut].mean()) if cut else 0.0)
            if tokens:
                token_sc.append(per_token[i, :cut].float())
                token_ent.append(per_token_entropy[i, :cut].float())
        return result, certainty, token_sc, token_ent
