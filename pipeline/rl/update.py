"""The policy update of one step: num_iterations optimizer steps over the sampled batch, the clipped
GRPO loss (with the k3 KL term) accumulated over micro-batches and processes."""

from __future__ import annotations

import math

import torch
from transformers import PreTrainedModel

from pipeline.config import AlgorithmConfig, TrainConfig
from pipeline.faults import fault_point
from pipeline.parallel.distributed import Distributed
from pipeline.rewards.registry import reads_policy_scores
from pipeline.rl.advantages import StepRewards
from pipeline.rl.loss import grpo_loss, token_weights
from pipeline.rl.passes import Passes
from pipeline.types import ScoredBatch

# Strategies whose optimizer steps plain (unsharded) tensors, where torch's fused AdamW applies. FSDP2's
# DTensor shards and DeepSpeed's flat partitions keep the default implementation.
FUSED_STRATEGIES = ("single", "ddp")


def make_optimizer(alg: AlgorithmConfig, policy: torch.nn.Module, strategy: str) -> torch.optim.AdamW:
    """AdamW over the policy's trainable parameters (fp32 master weights, fp32 state).

    On CPU with plain tensors it is torch's fused kernel: one pass over each parameter, its gradient
    and both moments, instead of the default multi-tensor (foreach) path's separate elementwise passes.
    Measured on SmolLM2-135M (bench/optimizer_step.py): several times faster per step, and the same
    update up to float rounding (tests/unit/test_optimizer.py). Elsewhere torch's default is kept.
    """
    params = [p for p in policy.parameters() if p.requires_grad]
    on_cpu = all(p.device.type == "cpu" for p in params)
    fused = on_cpu and strategy in FUSED_STRATEGIES
    return torch.optim.AdamW(
        params,
        lr=alg.lr,
        betas=alg.adam_betas,
        eps=alg.adam_eps,
        weight_decay=alg.weight_decay,
        fused=fused or None,
    )


# The loss terms summed over micro-batches and processes (pipeline.rl.loss.LossTerms fields).
SUMMED_TERMS = ("loss", "policy_loss", "kl", "clipped_tokens", "tokens")


class PolicyUpdate:
    def __init__(
        self,
        cfg: TrainConfig,
        passes: Passes,
        policy: PreTrainedModel,
        scorer: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        dist: Distributed,
    ) -> None:
        self.cfg, self.passes, self.policy, self.scorer = cfg, passes, policy, scorer
        self.optimizer, self.scheduler, self.dist = optimizer, scheduler, dist

    def __call__(
        self, batch: ScoredBatch, rewards: StepRewards, slices: list[slice], step: int, fill_policy: bool
    ) -> dict[str, float]:
        """Gradient accumulation over `slices`, one optimizer step per iteration; returns the metrics.

        `fill_policy`: each micro-batch (whole groups) writes the policy's certainty and entropy into
        batch.policy from its gradient pass, and the advantages are re-read after it when a reward
        reads them; otherwise they are read once."""
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
        # No old log-probs (one iteration without a no-grad pass): they are the gradient pass's own,
        # detached (ratio 1, the same gradient), and are written to batch.policy as that pass would have.
        old_from_gradient_pass = batch.policy.logprobs is None
        if old_from_gradient_pass:
            batch.policy.logprobs = torch.zeros_like(mask)
        old = batch.policy.logprobs
        ref = batch.reference.logprobs if batch.reference is not None else None
        sums = torch.zeros(len(SUMMED_TERMS), dtype=torch.float64)
        grad_norms, lrs = [], []
        refresh = fill_policy and reads_policy_scores(self.cfg.method.rewards)
        adv = None if refresh else rewards.advantages()
        skipped = 0
        checkpointing = self.cfg.trainer.gradient_checkpointing
        for _ in range(alg.num_iterations):
            lrs.append(self.scheduler.get_last_lr()[0])
            for i, rows in enumerate(slices):
                last = i == len(slices) - 1
                with dist.accumulating(self.scorer, last):
                    # HF recomputes layers only in train mode; the policy has no dropout (checked)
                    self.policy.train(checkpointing)
                    scores, width = self.passes.score_rows(self.scorer, batch, rows, True, fill_policy)
                    self.policy.eval()
                    device = scores.logprobs.device
                    if fill_policy:
                        batch.policy.self_certainty[rows, :width] = scores.self_certainty.float().cpu()
                        batch.policy.entropy[rows, :width] = scores.entropy.float().cpu()
                    adv_rows = (rewards.advantages() if refresh else adv)[rows]
                    if old_from_gradient_pass:
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
                summed = [float(getattr(terms, t).detach()) for t in SUMMED_TERMS]
                sums += torch.tensor(summed, dtype=torch.float64)
            fault_point("update", step)  # gradients computed, weights not yet stepped
            max_norm = alg.max_grad_norm if alg.max_grad_norm > 0 else math.inf
            grad_norms.append(dist.optimizer_step(self.optimizer, max_norm))
            # A non-finite norm: the optimizer step was skipped (the schedule still advances, so the
            # learning rate stays a function of the step index).
            skipped += not math.isfinite(grad_norms[-1])
            self.scheduler.step()
        k = alg.num_iterations
        total = dict(zip(SUMMED_TERMS, dist.sum(sums).tolist(), strict=True))
        return {
            "loss": total["loss"] / k,
            "loss/policy": total["policy_loss"] / k,
            "loss/kl_term": total["kl"] / k,
            "clip_fraction": total["clipped_tokens"] / max(total["tokens"], 1),
            "grad_norm": sum(grad_norms) / k,
            "lr": lrs[0],
            "update/skipped": float(skipped),
        }
