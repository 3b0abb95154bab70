"""A step's forward passes over its sampled batch, in micro-batches: which rows run together, the
no-grad scoring pass of any model (policy or reference), and one micro-batch of the gradient pass.

Every pass runs under the run's precision (bf16 autocast where trainer.mixed_precision says so) and
trims each micro-batch's completion columns to its longest completion.
"""

from __future__ import annotations

import contextlib

import torch
from transformers import PreTrainedModel

from pipeline.config import AlgorithmConfig
from pipeline.modeling.precision import autocast
from pipeline.parallel.distributed import Distributed
from pipeline.rl.batch import micro_batches, split_to
from pipeline.rl.reference import on_device
from pipeline.rl.scoring import CompletionScorer
from pipeline.types import ScoredBatch, TokenScores


class Passes:
    def __init__(
        self, alg: AlgorithmConfig, mixed_precision: str, policy: PreTrainedModel, dist: Distributed
    ) -> None:
        self.alg = alg
        self.mixed_precision = mixed_precision
        self.policy = policy
        self.dist = dist

    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast around rollouts and scoring passes when trainer.mixed_precision is bf16 (the HF
        engine leaves it for generation on CPU; see pipeline/rollout/hf.py)."""
        return autocast(self.mixed_precision, self.device().type)

    def micro_batches(self, batch: ScoredBatch) -> list[slice]:
        """Row ranges of the scoring and gradient passes: micro_batch_size rows and, if set,
        micro_batch_tokens padded tokens at most; equally many on every process."""
        alg, dist = self.alg, self.dist
        lengths = batch.completion_mask.sum(-1).long()  # [N]
        prompt_lengths = batch.attention_mask[:, : batch.prompt_length].sum(-1)  # [N]
        prompt_index = torch.arange(lengths.shape[0]) // batch.group_size
        slices = micro_batches(
            prompt_lengths, lengths, prompt_index, alg.micro_batch_size, alg.micro_batch_tokens
        )
        if alg.micro_batch_tokens > 0 and dist.world_size > 1:
            slices = split_to(slices, int(dist.gather(torch.tensor([len(slices)])).max()))
        return slices

    def _slice(self, batch: ScoredBatch, rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """A micro-batch's tensors with completion columns trimmed to its longest completion."""
        mask = batch.completion_mask[rows]
        width = max(1, int(mask.sum(-1).max()))
        end = batch.prompt_length + width
        device = self.device()
        return (
            batch.input_ids[rows, :end].to(device),
            batch.attention_mask[rows, :end].to(device),
            mask[:, :width].to(device),
            width,
        )

    def score_rows(
        self, scorer: torch.nn.Module, batch: ScoredBatch, rows: slice, with_grad: bool, with_certainty: bool
    ) -> tuple[TokenScores, int]:
        """Score one micro-batch; returns [rows, width] scores and the trimmed completion width."""
        alg = self.alg
        ids, attn, mask, width = self._slice(batch, rows)
        with self.autocast():
            logprobs, certainty, entropy = scorer(
                ids,
                attn,
                mask,
                batch.prompt_length,
                chunk_tokens=alg.scoring_chunk_tokens,
                logprob_temperature=alg.logprob_temperature(),
                certainty_temperature=alg.certainty_temperature(),
                with_certainty=with_certainty,
                with_grad=with_grad,
            )
        return TokenScores(logprobs, certainty, entropy), width

    def score(self, scorer: torch.nn.Module, batch: ScoredBatch, slices: list[slice]) -> TokenScores:
        """The no-grad scoring pass of one model over the batch, in micro-batches: [N, C] scores."""
        n, c = batch.completion_mask.shape
        out = TokenScores(*(torch.zeros(n, c) for _ in range(3)))
        for rows in slices:
            s, width = self.score_rows(scorer, batch, rows, with_grad=False, with_certainty=True)
            out.logprobs[rows, :width] = s.logprobs.float().cpu()
            out.self_certainty[rows, :width] = s.self_certainty.float().cpu()
            out.entropy[rows, :width] = s.entropy.float().cpu()
        return out

    def score_reference(
        self, reference: PreTrainedModel, offload: bool, batch: ScoredBatch, slices: list[slice]
    ) -> TokenScores:
        """The reference model's scoring pass (moved to the policy's device for it when offloaded)."""
        with on_device(reference, self.device(), offload) as ref:
            return self.score(CompletionScorer(ref), batch, slices)
