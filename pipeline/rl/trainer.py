"""The GRPO loop every method shares: rollout -> score -> reward -> advantage -> update -> log -> save.

A method is only a reward choice (cfg.method.rewards, looked up in the reward registry); nothing in
this loop branches on the method's name.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_cosine_schedule_with_warmup

from pipeline.config import TrainConfig
from pipeline.data.sampler import PromptSampler
from pipeline.faults import fault_point
from pipeline.models import enable_gradient_checkpointing, policy_state, save_atomically
from pipeline.precision import autocast, with_resolved_precision
from pipeline.rewards.gold import answer_rate, gold_correctness
from pipeline.rewards.registry import combine, reads_policy_scores
from pipeline.rl.advantages import group_advantages
from pipeline.rl.batch import collate_groups, micro_batches, recorded_scores, split_to, whole_groups
from pipeline.rl.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    resume_point,
    run_fingerprint,
    save_checkpoint,
)
from pipeline.rl.distributed import Distributed, innermost_optimizer
from pipeline.rl.divergence import NonFiniteGuard
from pipeline.rl.loss import grpo_loss, token_weights
from pipeline.rl.metrics import completion_rows, sequence_statistics, summarize_statistics
from pipeline.rl.metrics_log import append_metrics, restore_metrics_log
from pipeline.rl.reference import make_reference, on_device
from pipeline.rl.scoring import CompletionScorer
from pipeline.rollout.base import RolloutEngine
from pipeline.rollout.factory import make_engine
from pipeline.tracking import NullTracker, Tracker
from pipeline.types import Prompt, ScoredBatch, TokenScores

METRICS_FILE = "metrics.jsonl"
logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    # One metrics dict per completed step (including steps restored from a checkpoint's log).
    history: list[dict[str, float]] = field(default_factory=list)
    # Folder of the final policy (HF format, with tokenizer).
    final_model: Path | None = None
    # Step the run resumed from (0 for a fresh run).
    resumed_from: int = 0
    # Training processes that ran it (provenance: the result does not depend on it).
    processes: int = 1
    # How they shared the work: single, ddp, zero1/zero2/zero3 (DeepSpeed) or fsdp2.
    strategy: str = "single"
    # Tracking run that logged it (None without a tracker).
    run_id: str | None = None
    # The precision the passes ran in (trainer.mixed_precision with auto resolved): no or bf16.
    mixed_precision: str = "no"


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: list[Prompt],
        *,
        reference: PreTrainedModel | None = None,
        tracker: Tracker | None = None,
        show_progress: bool = True,
        dist: Distributed | None = None,
    ) -> None:
        # `auto` precision resolved for the policy's device: what runs is what the config says.
        cfg = with_resolved_precision(cfg, next(policy.parameters()).device)
        alg = cfg.algorithm
        self.cfg = cfg
        self.dist = dist or Distributed()
        show_progress = show_progress and self.dist.is_main
        self.policy = policy.eval()  # eval mode: no dropout, so old and new log-probs agree
        if cfg.trainer.gradient_checkpointing:
            enable_gradient_checkpointing(policy)
        self.tokenizer = tokenizer
        # First: a colocated vLLM sleeps right after it starts, so the reference model and the optimizer
        # state get that GPU memory. ZeRO-3: every generate step is a collective (synced).
        self.engine: RolloutEngine = make_engine(
            cfg, policy, tokenizer, show_progress=show_progress, synced=self.dist.zero_stage == 3
        )
        self.tracker = tracker or NullTracker()
        self.show_progress = show_progress
        self.sampler = PromptSampler(prompts, alg.prompts_per_step, cfg.trainer.seed)
        # beta = 0 and no offline reward: the reference model is never built nor run.
        self.reference = make_reference(cfg, policy, reference)
        optimizer = torch.optim.AdamW(
            [p for p in policy.parameters() if p.requires_grad],
            lr=alg.lr,
            betas=alg.adam_betas,
            eps=alg.adam_eps,
            weight_decay=alg.weight_decay,
        )
        # The policy is trained through its scoring pass: that module is what DDP & co. wrap.
        self.scorer, self.optimizer = self.dist.prepare(
            CompletionScorer(policy), optimizer, external=list(policy.get_output_embeddings().parameters())
        )
        total = alg.steps * alg.num_iterations
        # Built on the torch optimizer inside accelerate's (and DeepSpeed's) wrappers: accelerate's
        # scheduler wrapper would step once per process; the lr lives in the innermost param groups.
        inner = innermost_optimizer(self.optimizer)
        self.scheduler = get_cosine_schedule_with_warmup(inner, math.ceil(alg.warmup_ratio * total), total)
        self.out = Path(cfg.trainer.output_dir)
        self.fingerprint = run_fingerprint(cfg, prompts)
        self.eos_ids = getattr(self.engine, "eos_ids", [tokenizer.eos_token_id])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    # ------------------------------------------------------------------ loop
    def train(self, stop_after: int | None = None) -> TrainResult:
        """Run (or resume) to cfg.algorithm.steps; `stop_after` ends this call after that many steps
        (a time-boxed job; the next call resumes from the checkpoint it leaves).

        With several processes every one runs this loop; only the main process writes files and logs.
        """
        cfg, dist = self.cfg, self.dist
        root = self.out / "checkpoints"
        start = 0
        ckpt = resume_point(dist, root, self.fingerprint) if cfg.trainer.resume else None
        if ckpt is not None:
            start = int(load_checkpoint(dist, ckpt, self.policy, self.optimizer, self.scheduler)["step"])
        self.out.mkdir(parents=True, exist_ok=True)
        history = restore_metrics_log(self.out / METRICS_FILE, start, write=dist.is_main)
        guard = NonFiniteGuard(cfg.trainer.max_nonfinite_steps)
        for m in history:  # a resumed run counts the skips before its checkpoint too
            guard.record(int(m["step"]), int(m.get("update/skipped", 0)))
        dist.barrier()
        end = cfg.algorithm.steps if stop_after is None else min(cfg.algorithm.steps, start + stop_after)
        desc = f"train {cfg.method.name}"
        bar = tqdm(range(start, end), desc=desc, unit="step", disable=not self.show_progress)
        for step in bar:
            metrics = self.step(step)
            metrics.update(guard.record(step, int(metrics["update/skipped"])))
            bar.set_postfix(reward=f"{metrics['reward/mean']:.3g}", acc=f"{metrics['gold/accuracy']:.2f}")
            history.append(metrics)
            done = step + 1
            if dist.is_main:
                append_metrics(self.out / METRICS_FILE, metrics)
                self.tracker.log_metrics({k: v for k, v in metrics.items() if k != "step"}, step=step)
            if done % max(1, cfg.trainer.checkpoint_every) == 0 or done in (cfg.algorithm.steps, end):
                save_checkpoint(  # every process: DeepSpeed writes its shards
                    dist,
                    root,
                    done,
                    self.scorer,
                    self.policy,
                    self.optimizer,
                    self.scheduler,
                    {"data_position": done * cfg.algorithm.prompts_per_step, "fingerprint": self.fingerprint},
                    keep_last=cfg.trainer.keep_last,
                )
            dist.barrier()  # nobody runs ahead of a checkpoint it might have to resume from
            if guard.tripped:
                why = f"loss={metrics['loss']}, grad_norm={metrics['grad_norm']}"
                raise guard.diverged(step, latest_checkpoint(root), why)
        final = None
        if end == cfg.algorithm.steps:
            final = self._save_final()
        return TrainResult(
            history=history,
            final_model=final,
            resumed_from=start,
            processes=dist.world_size,
            strategy=dist.strategy,
            mixed_precision=cfg.trainer.mixed_precision,
        )

    def _save_final(self) -> Path:
        """The trained policy as a Hugging Face model (every process calls it: ZeRO-3 gathers)."""
        weights = self.dist.full_state_dict(self.scorer)
        final = self.out / "final"
        if self.dist.is_main:
            save_atomically(final, self.policy, self.tokenizer, state_dict=policy_state(weights, self.policy))
        self.dist.barrier()
        return final

    # ------------------------------------------------------------------ one step
    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast around rollouts and scoring passes when trainer.mixed_precision is bf16 (the HF
        engine leaves it for generation on CPU; see pipeline/rollout/hf.py)."""
        return autocast(self.cfg.trainer.mixed_precision, self._device().type)

    def _device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def step(self, step: int) -> dict[str, float]:
        cfg, alg, dist = self.cfg, self.cfg.algorithm, self.dist
        t0 = time.perf_counter()
        # Every process draws the same global batch and keeps its contiguous shard of prompts.
        prompts, first = dist.shard(self.sampler.batch(step))
        with self._autocast(), dist.rollout_weights():
            groups = self.engine.generate(
                prompts,
                alg.group_size,
                cfg.sampling,
                seed=cfg.trainer.seed * 1_000_003 + step,
                first_prompt=first,
            )
        t_rollout = time.perf_counter() - t0
        fault_point("rollout", step)  # the step's samples exist only in memory

        batch = collate_groups(groups, self.pad_id)
        slices = self._micro_batches(batch)
        recorded = recorded_scores(batch) if alg.num_iterations == 1 else None
        # Without recorded scores (vLLM), one iteration over micro-batches of whole groups takes the
        # policy's certainty from the gradient pass itself: a group's rewards read its own rows only, so
        # they are known once its micro-batch's forward has run. Every process decides alike (ZeRO-3
        # gathers weights in every decoder call, so all must make the same calls).
        fused = recorded is None and alg.num_iterations == 1
        fused = fused and not dist.sum(torch.tensor([float(not whole_groups(slices, batch.group_size))]))
        if recorded is not None:
            batch.policy = recorded
        elif fused:  # filled in by the gradient pass
            mask = batch.completion_mask
            batch.policy = TokenScores(None, torch.zeros_like(mask), torch.zeros_like(mask))
        else:
            batch.policy = self._score(self.scorer, batch, slices)
        if self.reference is not None:
            batch.reference = self._score_reference(batch, slices)
        t_score = time.perf_counter() - t0 - t_rollout  # with `fused`, the policy's certainty is in update

        # [B, G] total and parts, this process's prompts; with `fused`, read as the gradient pass fills
        # in the policy's scores (the last read sees them all)
        rewards = None if fused else combine(cfg.method.rewards, batch)

        def advantages() -> torch.Tensor:  # [N]
            nonlocal rewards
            if fused:
                rewards = combine(cfg.method.rewards, batch)
            assert rewards is not None
            return group_advantages(rewards[0], alg.std_eps, alg.scale_rewards).flatten()

        update = self._update(batch, advantages, slices, step, fill_policy=fused)
        elapsed = time.perf_counter() - t0
        assert rewards is not None
        total, parts = rewards
        correct, answered = gold_correctness(batch), answer_rate(batch)

        stats = sequence_statistics(batch, total, parts, correct, answered, alg.max_new_tokens, self.eos_ids)
        stats = {k: dist.gather(v) for k, v in stats.items()}  # the whole step's sequences, in order
        completion_tokens = float(stats["length"].sum())
        metrics: dict[str, float] = {"step": step}
        metrics.update(summarize_statistics(stats, alg.group_size))
        metrics.update(update)
        metrics.update(
            {
                "time/step_s": elapsed,
                "time/rollout_s": t_rollout,
                "time/score_s": t_score,
                "time/update_s": elapsed - t_rollout - t_score,
                "throughput/tokens_per_s": completion_tokens / elapsed,
                "throughput/rollout_tokens_per_s": completion_tokens / max(t_rollout, 1e-9),
            }
        )
        if dist.is_main:
            self._log_completions(step, batch, total, correct)
        return metrics

    def _micro_batches(self, batch: ScoredBatch) -> list[slice]:
        """Row ranges of the scoring and gradient passes: micro_batch_size rows and, if set,
        micro_batch_tokens padded tokens at most; equally many on every process."""
        alg, dist = self.cfg.algorithm, self.dist
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
        device = self._device()
        return (
            batch.input_ids[rows, :end].to(device),
            batch.attention_mask[rows, :end].to(device),
            mask[:, :width].to(device),
            width,
        )

    def _score_rows(
        self, scorer: torch.nn.Module, batch: ScoredBatch, rows: slice, with_grad: bool, with_certainty: bool
    ) -> tuple[TokenScores, int]:
        """Score one micro-batch; returns [rows, width] scores and the trimmed completion width."""
        alg = self.cfg.algorithm
        ids, attn, mask, width = self._slice(batch, rows)
        with self._autocast():
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

    def _score(self, scorer: torch.nn.Module, batch: ScoredBatch, slices: list[slice]) -> TokenScores:
        """The no-grad scoring pass of one model over the batch, in micro-batches."""
        n, c = batch.completion_mask.shape
        out = TokenScores(*(torch.zeros(n, c) for _ in range(3)))
        for rows in slices:
            s, width = self._score_rows(scorer, batch, rows, with_grad=False, with_certainty=True)
            out.logprobs[rows, :width] = s.logprobs.float().cpu()
            out.self_certainty[rows, :width] = s.self_certainty.float().cpu()
            out.entropy[rows, :width] = s.entropy.float().cpu()
        return out

    def _score_reference(self, batch: ScoredBatch, slices: list[slice]) -> TokenScores:
        assert self.reference is not None
        with on_device(self.reference, self._device(), self.cfg.trainer.offload_reference) as ref:
            return self._score(CompletionScorer(ref), batch, slices)

    def _update(
        self,
        batch: ScoredBatch,
        advantages: Callable[[], torch.Tensor],
        slices: list[slice],
        step: int,
        fill_policy: bool,
    ) -> dict[str, float]:
        """num_iterations optimizer steps over the batch, with gradient accumulation over micro-batches.

        `fill_policy`: each micro-batch (whole groups) writes the policy's certainty and entropy into
        batch.policy from its gradient pass, and advantages() [N] is re-read after it when a reward
        reads them; otherwise advantages() is read once."""
        alg, dist = self.cfg.algorithm, self.dist
        mask = batch.completion_mask
        # The whole step's token count (all processes): dapo's denominator.
        tokens_all = dist.sum(torch.tensor([float(mask.sum())], dtype=torch.float64))
        weights = token_weights(
            mask,
            alg.loss_aggregation,
            alg.max_new_tokens,
            micro_batches=slices,
            processes=dist.world_size,
            total_tokens=float(tokens_all),
        )
        assert batch.policy is not None
        # None: one iteration without a no-grad pass; the old log-probs are the current ones, detached
        # (ratio 1, the same gradient), and are kept for the metrics as the pass would have left them.
        from_update = batch.policy.logprobs is None
        if from_update:
            batch.policy.logprobs = torch.zeros_like(mask)
        old = batch.policy.logprobs
        ref = batch.reference.logprobs if batch.reference is not None else None
        # loss, policy loss, kl, clipped tokens, tokens: summed over micro-batches and processes
        sums = torch.zeros(5, dtype=torch.float64)
        grad_norms, lrs = [], []
        refresh = fill_policy and reads_policy_scores(self.cfg.method.rewards)
        adv = None if refresh else advantages()
        skipped = 0
        checkpointing = self.cfg.trainer.gradient_checkpointing
        for _ in range(alg.num_iterations):
            lrs.append(self.scheduler.get_last_lr()[0])
            for i, rows in enumerate(slices):
                last = i == len(slices) - 1
                with dist.accumulating(self.scorer, last):
                    # HF recomputes layers only in train mode; the policy has no dropout (checked)
                    self.policy.train(checkpointing)
                    scores, width = self._score_rows(self.scorer, batch, rows, True, fill_policy)
                    self.policy.eval()
                    device = scores.logprobs.device
                    if fill_policy:
                        batch.policy.self_certainty[rows, :width] = scores.self_certainty.float().cpu()
                        batch.policy.entropy[rows, :width] = scores.entropy.float().cpu()
                    adv_rows = (advantages() if refresh else adv)[rows]
                    if from_update:
                        old_rows = scores.logprobs.detach().float()
                        old[rows, :width] = old_rows.cpu()
                    else:
                        old_rows = old[rows, :width].to(device)
                    terms = grpo_loss(
                        scores.logprobs.float(),
                        old_rows,
                        adv_rows.to(device),
                        weights[rows, :width].to(device),
                        clip_eps_low=alg.clip_eps_low,
                        clip_eps_high=alg.clip_eps_high,
                        beta=alg.beta,
                        ref_logprobs=None if ref is None else ref[rows, :width].to(device),
                    )
                    dist.backward(terms.loss, last)
                parts = (terms.loss.detach(), terms.policy_loss, terms.kl, terms.clipped_tokens, terms.tokens)
                sums += torch.tensor([float(x) for x in parts], dtype=torch.float64)
            fault_point("update", step)  # gradients computed, weights not yet stepped
            max_norm = alg.max_grad_norm if alg.max_grad_norm > 0 else math.inf
            grad_norms.append(dist.optimizer_step(self.optimizer, max_norm))
            # A non-finite norm: the optimizer step was skipped (the schedule still advances, so the
            # learning rate stays a function of the step index).
            skipped += not math.isfinite(grad_norms[-1])
            self.scheduler.step()
        k = alg.num_iterations
        loss, policy_loss, kl, clipped, tokens = dist.sum(sums).tolist()
        return {
            "loss": loss / k,
            "loss/policy": policy_loss / k,
            "loss/kl_term": kl / k,
            "clip_fraction": clipped / max(tokens, 1),
            "grad_norm": sum(grad_norms) / k,
            "lr": lrs[0],
            "update/skipped": float(skipped),
        }

    def _log_completions(
        self, step: int, batch: ScoredBatch, total: torch.Tensor, correct: torch.Tensor
    ) -> None:
        k = self.cfg.trainer.log_completions
        if k > 0:
            self.tracker.log_table(completion_rows(step, batch, total, correct, k), "completions.json")
