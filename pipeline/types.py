"""The nouns passed between rollout, scoring, rewards and the trainer.

Shapes: B prompts per step, G completions per prompt, N = B * G sequences, P the padded prompt
length, C the padded completion length, V the vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: reading and writing prompts (prepare_data) needs no torch
    import torch


@dataclass(frozen=True)
class Prompt:
    """One training or evaluation question, already in chat form."""

    id: str
    # Chat messages ({"role": ..., "content": ...}); the system prompt, if any, is the first one.
    messages: list[dict[str, str]]
    # Gold final answer as a string (e.g. "\\frac{1}{2}"), or None where the data has none.
    gold: str | None = None
    # How a completion's answer is read when it has no \\boxed{}: "none" (no answer) or "last_number"
    # (the recorded fallback for plain-number datasets such as GSM8K and the embedded arithmetic set).
    answer_fallback: str = "none"
    meta: dict[str, Any] = field(default_factory=dict)
    # A prompt used verbatim, with no chat template (e.g. MMLU-Pro's original few-shot format);
    # `messages` then holds it as one user message for records and logs.
    text: str | None = None


@dataclass
class RolloutGroup:
    """The G sampled completions of one prompt."""

    prompt: Prompt
    # [P_i] token ids of the rendered prompt (chat template applied), no padding.
    prompt_ids: torch.Tensor
    # [G, C] completion token ids, right-padded with the pad token.
    completion_ids: torch.Tensor
    # [G, C] 1 for completion tokens up to and including the first EOS, else 0.
    completion_mask: torch.Tensor
    # G decoded completions (special tokens stripped).
    texts: list[str]
    # [G] mean self-certainty of each completion recorded during generation (raw logits), if asked for.
    self_certainty: torch.Tensor | None = None
    # ([G, C] self-certainty, [G, C] entropy) of every completion token, read from the generation
    # logits (0 where the mask is 0), if the engine recorded them; the trainer then skips the
    # policy's no-grad scoring pass when nothing else needs it.
    token_scores: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def group_size(self) -> int:
        return int(self.completion_ids.shape[0])


@dataclass
class TokenScores:
    """Per completion token outputs of one scoring pass. All [N, C], zero where the mask is 0."""

    # log p(o_t | q, o_<t) of the sampled token (at the scoring temperature). None for the policy's
    # scores recorded during rollout (1 iteration) until the gradient pass fills them in.
    logprobs: torch.Tensor | None
    # KL(U || p(.|q, o_<t)) = logsumexp(z) - mean(z) - log V.
    self_certainty: torch.Tensor
    # H(p(.|q, o_<t)) = logsumexp(z) - sum_j p_j z_j.
    entropy: torch.Tensor


@dataclass
class ScoredBatch:
    """A step's rollout groups collated into tensors, with the scoring passes attached."""

    groups: list[RolloutGroup]
    # [N, P + C] left-padded prompts followed by right-padded completions.
    input_ids: torch.Tensor
    # [N, P + C] 1 on real prompt tokens and on masked-in completion tokens.
    attention_mask: torch.Tensor
    # [N, C] the completion part of input_ids.
    completion_ids: torch.Tensor
    # [N, C] float mask of completion tokens (up to and including the first EOS).
    completion_mask: torch.Tensor
    # Padded prompt length P: completion token t sits at column P + t of input_ids.
    prompt_length: int
    # Scores from the current policy: old log-probs, online self-certainty, entropy (from a no-grad
    # pass, recorded during rollout, or filled in by the gradient pass: see Trainer.step).
    policy: TokenScores | None = None
    # Scores from the frozen reference model, if it was run (beta > 0 or an offline reward).
    reference: TokenScores | None = None

    @property
    def num_prompts(self) -> int:
        return len(self.groups)

    @property
    def group_size(self) -> int:
        return self.groups[0].group_size

    @property
    def texts(self) -> list[str]:
        """N completion texts, group-major (prompt 0's G completions first)."""
        return [t for g in self.groups for t in g.texts]

    @property
    def golds(self) -> list[str | None]:
        return [g.prompt.gold for g in self.groups]
