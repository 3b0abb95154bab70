"""The GRPO loop every method shares: rollout -> score -> reward -> advantage -> update -> log -> save.

A method is only a reward choice (cfg.method.rewards, looked up in the reward registry); nothing in
this loop branches on the method's name.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_cosine_schedule_with_warmup

from pipeline.config import TrainConfig
from pipeline.data.sampler import PromptSampler
from pipeline.faults import fault_point
from pipeline.modeling.models import enable_gradient_checkpointing, policy_state, save_atomically
from pipeline.modeling.precision import with_resolved_precision
from pipeline.parallel.distributed import Distributed, innermost_optimizer
from pipeline.rewards.gold import answer_rate, gold_correctness
from pipeline.rl.advantages import StepRewards
from pipeline.rl.batch import collate_groups, recorded_scores, whole_groups
from pipeline.rl.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    resume_point,
    run_fingerprint,
    save_checkpoint,
)
from pipeline.rl.divergence import NonFiniteGuard
from pipeline.rl.metrics import completion_rows, sequence_statistics, summarize_statistics
from pipeline.rl.metrics_log import append_metrics, restore_metrics_log
from pipeline.rl.passes import Passes
from pipeline.rl.reference import make_reference
from pipeline.rl.scoring import CompletionScorer
from pipeline.rl.update import PolicyUpdate, make_optimizer
from pipeline.rollout.base import RolloutEngine
from pipeline.rollout.factory import make_engine
from pipeline.rollout.sampling import step_seed
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
        self.passes = Passes(alg, cfg.trainer.mixed_precision, policy, self.dist)
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
        optimizer = make_optimizer(alg, policy, self.dist.strategy)
        # The policy is trained through its scoring pass: that module is what DDP & co. wrap.
        self.scorer, self.optimizer = self.dist.prepare(
            CompletionScorer(policy), optimizer, external=list(policy.get_output_embeddings().parameters())
        )
        total = alg.steps * alg.num_iterations
        # Built on the torch optimizer inside accelerate's (and DeepSpeed's) wrappers: accelerate's
        # scheduler wrapper would step once per process; the lr lives in the innermost param groups.
        inner = innermost_optimizer(self.optimizer)
        self.scheduler = get_cosine_schedule_with_warmup(inner, math.ceil(alg.warmup_ratio * total), total)
        self.update = PolicyUpdate(
            cfg, self.passes, policy, self.scorer, self.optimizer, self.scheduler, self.dist
        )
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
    def step(self, step: int) -> dict[str, float]:
        """One GRPO step: rollout, score, rewards, advantages, update, log."""
        cfg, alg, dist = self.cfg, self.cfg.algorithm, self.dist
        t0 = time.perf_counter()
        # Every process draws the same global batch and keeps its contiguous shard of prompts.
        prompts, first = dist.shard(self.sampler.batch(step))
        with self.passes.autocast(), dist.rollout_weights():
            seed = step_seed(cfg.trainer.seed, step)
            groups = self.engine.generate(
                prompts, alg.group_size, cfg.sampling, seed=seed, first_prompt=first
            )
        t_rollout = time.perf_counter() - t0
        fault_point("rollout", step)  # the step's samples exist only in memory

        batch = collate_groups(groups, self.pad_id)
        slices = self.passes.micro_batches(batch)
        batch.policy, fused = self._policy_scores(batch, slices)
        if self.reference is not None:
            offload = cfg.trainer.offload_reference
            batch.reference = self.passes.score_reference(self.reference, offload, batch, slices)
        t_score = time.perf_counter() - t0 - t_rollout  # with `fused`, the policy's certainty is in update

        rewards = StepRewards(cfg.method.rewards, batch, alg, live=fused)  # [B, G], this process's prompts
        update = self.update(batch, rewards, slices, step, fill_policy=fused)  # reads rewards.advantages()
        elapsed = time.perf_counter() - t0

        correct, answered = gold_correctness(batch), answer_rate(batch)
        stats = sequence_statistics(
            batch, rewards.total, rewards.parts, correct, answered, alg.max_new_tokens, self.eos_ids
        )
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
            self._log_completions(step, batch, rewards.total, correct)
        return metrics

    def _policy_scores(self, batch: ScoredBatch, slices: list[slice]) -> tuple[TokenScores, bool]:
        """The policy's token scores before the update, and whether the gradient pass fills them in.

        The rollout engine's recorded scores when it keeps them (HF, one iteration). Without (vLLM), one
        iteration over micro-batches of whole groups takes the policy's certainty from the gradient pass
        itself (`fused`: placeholders here): a group's rewards read its own rows only, so they are known
        once its micro-batch's forward has run. Every process decides alike (ZeRO-3 gathers weights in
        every decoder call, so all must make the same calls). Otherwise a no-grad scoring pass."""
        alg, dist = self.cfg.algorithm, self.dist
        recorded = recorded_scores(batch) if alg.num_iterations == 1 else None
        fused = recorded is None and alg.num_iterations == 1
        fused = fused and not dist.sum(torch.tensor([float(not whole_groups(slices, batch.group_size))]))
        if recorded is not None:
            return recorded, fused
        if fused:
            mask = batch.completion_mask
            return TokenScores(None, torch.zeros_like(mask), torch.zeros_like(mask)), fused
        return self.passes.score(self.scorer, batch, slices), fused

    def _log_completions(
        self, step: int, batch: ScoredBatch, total: torch.Tensor, correct: torch.Tensor
    ) -> None:
        k = self.cfg.trainer.log_completions
        if k > 0:
            self.tracker.log_table(completion_rows(step, batch, total, correct, k), "completions.json")
