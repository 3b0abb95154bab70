"""One forward pass -> per completion token log-prob, self-certainty and entropy.

Alignment: the logits at column j predict the token at column j + 1, so completion token t (at
column P + t, P the padded prompt length) is scored from the hidden state at column P + t - 1; the
first completion token's distribution comes from the last prompt position.

Work: each distinct prompt runs through the decoder once and its KV cache is copied to its rows
(pipeline/modeling/prompt_cache.py), then the completions run on top; a GRPO group's prompt costs 1/G.

Memory: the vocabulary projection runs on the masked completion tokens only, `chunk_tokens` rows at a
time, so the extra peak is O(chunk x V), never O(N x C x V). With gradients, each chunk's logits are
recomputed in backward instead of being stored (pipeline/modeling/vocab_head.py).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel

from pipeline.modeling.prompt_cache import can_share, position_ids_from_mask, select_rows, shared_prompts
from pipeline.modeling.vocab_head import chunk_scores, compute_weight
from pipeline.types import TokenScores


def _check_plain_head(model: PreTrainedModel) -> None:
    for attr in ("final_logit_softcapping", "logit_scale"):
        if getattr(model.config, attr, None):
            raise NotImplementedError(
                f"scoring assumes logits = lm_head(hidden); {attr} is set in the config"
            )


def completion_hidden_states(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_length: int,
    *,
    share_prompts: bool = True,
) -> torch.Tensor:
    """[N, C, H] final hidden states at the positions that predict completion tokens 0..C-1.

    With `share_prompts`, a prompt repeated in several rows (a GRPO group's G completions) runs through
    the decoder once: its keys and values are cached and copied to its rows, and the completions run on
    top. Same result as the full-row pass up to float rounding (tested), at 1/G of the prompt's cost,
    with and without gradients. The plain full-row pass with `share_prompts=False`, without prompt
    columns, under gradient checkpointing, or for models whose cache layers are not plain (sliding window).
    """
    _check_plain_head(model)
    decoder = model.get_decoder()
    completion_length = input_ids.shape[1] - prompt_length
    cache = DynamicCache(config=model.config)
    # HF drops the cache under gradient checkpointing in train mode: the full-row pass there. Otherwise
    # the prompt pass runs even where no prompt repeats, so that every process of a sharded run makes
    # the same decoder calls (ZeRO-3 gathers weights per call).
    recomputing = getattr(model, "is_gradient_checkpointing", False) and model.training
    if not share_prompts or recomputing or prompt_length == 0 or not can_share(cache):
        out = decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
        hidden = out.last_hidden_state  # [N, P + C, H]
        return hidden[:, prompt_length - 1 : prompt_length - 1 + completion_length]
    first, inverse = shared_prompts(input_ids, attention_mask, prompt_length)
    # Left columns that are padding in every row carry nothing: positions count real tokens only.
    start = int(attention_mask[:, :prompt_length].any(0).long().argmax())
    prompt_mask = attention_mask[first, start:prompt_length]  # [U, P']
    prefix = decoder(
        input_ids=input_ids[first, start:prompt_length],
        attention_mask=prompt_mask,
        position_ids=position_ids_from_mask(prompt_mask),
        past_key_values=cache,
        use_cache=True,
    )
    last = prefix.last_hidden_state[:, -1]  # [U, H]: predicts each completion's first token
    select_rows(cache, inverse)  # [U, ...] -> [N, ...]: each row gets its prompt's keys/values
    mask = attention_mask[:, start:]  # [N, P' + C]
    rest = decoder(
        input_ids=input_ids[:, prompt_length:],
        attention_mask=mask,
        position_ids=position_ids_from_mask(mask)[:, prompt_length - start :],
        past_key_values=cache,
        use_cache=True,
    )
    # [N, C, H]: the prompt's last state, then completion states 0..C-2 (the last one predicts nothing)
    return torch.cat([last[inverse, None], rest.last_hidden_state[:, : completion_length - 1]], dim=1)


def score_completions(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_length: int,
    completion_mask: torch.Tensor,
    *,
    chunk_tokens: int = 256,
    logprob_temperature: float = 1.0,
    certainty_temperature: float = 1.0,
    with_certainty: bool = True,
    with_grad: bool = False,
    share_prompts: bool = True,
) -> TokenScores:
    """Score the completion part of `input_ids` [N, P + C] under `model`.

    completion_mask [N, C] selects the scored tokens; everything else is 0 in the outputs.
    logprob_temperature / certainty_temperature divide the logits before the respective softmax
    (1.0 = raw logits: the official INTUITOR code computes self-certainty from raw logits).
    With `with_grad`, log-probs carry gradients (certainty never does: it is a reward, not a loss).
    """
    if chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    completion_ids = input_ids[:, prompt_length:]  # [N, C]
    mask = completion_mask.bool()
    n, c = mask.shape
    if completion_ids.shape != mask.shape:
        raise ValueError(
            f"completion_mask {tuple(mask.shape)} does not match completions {tuple(completion_ids.shape)}"
        )
    lm_head = model.get_output_embeddings()
    weight, bias = lm_head.weight, lm_head.bias
    certainty_inv_temp = 1.0 / certainty_temperature if with_certainty else None

    grad_ctx = torch.enable_grad() if with_grad else torch.no_grad()
    with grad_ctx:
        hidden = completion_hidden_states(
            model, input_ids, attention_mask, prompt_length, share_prompts=share_prompts
        )  # [N, C, H]
        flat_hidden = hidden[mask]  # [M, H], M = number of completion tokens
        flat_tokens = completion_ids[mask]  # [M]
        cast_weight = compute_weight(weight)  # once per pass, not once per chunk
        lp_chunks, sc_chunks, ent_chunks = [], [], []
        for start in range(0, flat_hidden.shape[0], chunk_tokens):
            lp, sc, ent = chunk_scores(
                flat_hidden[start : start + chunk_tokens],
                weight,
                bias,
                cast_weight,
                flat_tokens[start : start + chunk_tokens],
                1.0 / logprob_temperature,
                certainty_inv_temp,
            )
            lp_chunks.append(lp)
            sc_chunks.append(sc)
            ent_chunks.append(ent)

    def scatter(chunks: list[torch.Tensor]) -> torch.Tensor:
        out = torch.zeros(n, c, dtype=torch.float32, device=input_ids.device)
        if not chunks:
            return out
        # masked_scatter keeps the autograd graph of the log-probs.
        return out.masked_scatter(mask, torch.cat(chunks).float())

    zeros = torch.zeros(n, c, dtype=torch.float32, device=input_ids.device)
    return TokenScores(
        logprobs=scatter(lp_chunks),
        self_certainty=scatter(sc_chunks) if with_certainty else zeros,
        entropy=scatter(ent_chunks) if with_certainty else zeros.clone(),
    )


def masked_sequence_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N, C] -> [N] mean over masked-in tokens; 0 for an empty completion."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)


class CompletionScorer(torch.nn.Module):
    """score_completions as a module whose forward is the whole scoring pass.

    Process-group wrappers (DDP, FSDP2, DeepSpeed) hook a module's forward; the scoring pass calls the
    decoder and the output embeddings directly, so the policy is wrapped through this module.
    Returns (logprobs, self_certainty, entropy), each [N, C].
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        completion_mask: torch.Tensor,
        prompt_length: int,
        **options: object,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = score_completions(
            self.model, input_ids, attention_mask, prompt_length, completion_mask, **options
        )
        return s.logprobs, s.self_certainty, s.entropy
