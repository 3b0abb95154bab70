"""Build the rollout engine a training run's config selects (`rollout.engine`: hf or vllm)."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pipeline.config import AlgorithmConfig, ConfigError, TrainConfig
from pipeline.models import resolve_model_path
from pipeline.rollout.base import RolloutEngine
from pipeline.rollout.hf import HFRolloutEngine


def default_max_model_len(alg: AlgorithmConfig) -> int | None:
    """Prompt budget + completion budget when the prompt budget is known; None lets vLLM read the
    model's own limit (which may reserve far more KV cache than a rollout needs)."""
    if alg.max_prompt_tokens is None:
        return None
    return alg.max_prompt_tokens + alg.max_new_tokens


def make_engine(
    cfg: TrainConfig,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    show_progress: bool = True,
    synced: bool = False,
) -> RolloutEngine:
    """The engine that samples `policy`'s rollouts: HF generate on the policy itself, or a colocated
    vLLM (imported only here) that follows the policy's weights. The only place a training run's
    engine is built (the Trainer calls it; the train stage, the Hydra app, the benches and the tests
    all go through the Trainer)."""
    engine = cfg.rollout.engine
    alg = cfg.algorithm
    if engine == "hf":
        return HFRolloutEngine(
            policy,
            tokenizer,
            show_progress=show_progress,
            synced=synced,
            # One iteration: the old log-probs are the gradient pass's own (detached), so the only
            # thing the policy's no-grad pass would add is self-certainty and entropy, which
            # generate's logits already hold: recorded there, the pass is skipped.
            record_token_scores=alg.num_iterations == 1,
            certainty_temperature=alg.certainty_temperature(),
        )
    if engine == "vllm":
        from pipeline.precision import resolve_mixed_precision
        from pipeline.rollout.vllm import VLLMRolloutEngine

        r = cfg.rollout
        device = next(policy.parameters()).device
        # The precision the training passes run in (`auto` resolved for the policy's device, where
        # the engine runs too; the Trainer resolves it before calling here, so a no-op for it).
        precision = resolve_mixed_precision(cfg.trainer.mixed_precision, str(device))
        return VLLMRolloutEngine(
            # vLLM reads the architecture (and initial weights) from the folder the policy came from;
            # the first rollout then loads the policy's current weights (e.g. after a resume).
            resolve_model_path(cfg.model),
            tokenizer,
            policy=policy,
            revision=cfg.model.revision,
            # fp32 master weights trained under bf16 autocast: vLLM samples in bf16, as autocast computes
            dtype="bfloat16" if precision == "bf16" else cfg.model.dtype,
            seed=cfg.trainer.seed,
            gpu_memory_utilization=r.gpu_memory_utilization,
            enable_sleep_mode=r.enable_sleep_mode,
            sleep_level=r.sleep_level,
            max_model_len=r.max_model_len or default_max_model_len(cfg.algorithm),
            max_num_seqs=r.batch_size,
            kv_cache_gb=r.kv_cache_gb,
            show_progress=show_progress,
            llm_kwargs=r.llm_kwargs,
        )
    raise ConfigError(f"rollout.engine: unknown engine {engine!r}; allowed: ['hf', 'vllm']")
