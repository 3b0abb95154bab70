"""Build the rollout engine a training run's config selects (`rollout.engine`: hf or vllm)."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pipeline.config import AlgorithmConfig, ConfigError, ModelConfig, RolloutConfig, TrainConfig
from pipeline.modeling.models import resolve_model_path
from pipeline.modeling.precision import Precision, generation_precision, resolve_mixed_precision
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
        # The precision the training passes run in (`auto` resolved for the policy's device, where
        # the engine runs too; the Trainer resolves it before calling here, so a no-op for it).
        device = str(next(policy.parameters()).device)
        precision = resolve_mixed_precision(cfg.trainer.mixed_precision, device)
        return _vllm_engine(
            cfg.model,
            cfg.rollout,
            policy,
            tokenizer,
            precision=precision,
            seed=cfg.trainer.seed,
            max_model_len=cfg.rollout.max_model_len or default_max_model_len(alg),
            show_progress=show_progress,
        )
    raise ConfigError(f"rollout.engine: unknown engine {engine!r}; allowed: ['hf', 'vllm']")


def make_eval_engine(
    rollout: RolloutConfig,
    model: ModelConfig,
    mixed_precision: str,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
) -> tuple[RolloutEngine | None, Precision]:
    """The engine evaluation decodes with and the precision it generates in: the training runs'
    engine (`rollout.engine`), so a model is evaluated as it was sampled during training.

    hf: None (the runner builds the HF engine, which records each answer's certainty while it
    generates) and the HF engine's generation precision (the weights' own on CPU). vllm: a vLLM engine
    on `model`'s folder at the training passes' precision (bf16 where autocast runs in bf16), not
    following the policy (its weights do not change)."""
    device = str(next(policy.parameters()).device)
    if rollout.engine == "hf":
        return None, generation_precision(mixed_precision, device)
    if rollout.engine == "vllm":
        precision = resolve_mixed_precision(mixed_precision, device)
        engine = _vllm_engine(
            model,
            rollout,
            policy,
            tokenizer,
            precision=precision,
            seed=seed,
            max_model_len=rollout.max_model_len,
            show_progress=False,  # the runner's item bar reports progress
            follow_policy=False,
        )
        return engine, precision
    raise ConfigError(f"rollout.engine: unknown engine {rollout.engine!r}; allowed: ['hf', 'vllm']")


def _vllm_engine(
    model: ModelConfig,
    rollout: RolloutConfig,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    precision: Precision,
    seed: int,
    max_model_len: int | None,
    show_progress: bool,
    follow_policy: bool = True,
) -> RolloutEngine:
    from pipeline.rollout.vllm import VLLMRolloutEngine  # vllm is imported only when it is used

    return VLLMRolloutEngine(
        # vLLM reads the architecture (and initial weights) from the folder the policy came from;
        # in training the first rollout then loads the policy's current weights (e.g. after a resume).
        resolve_model_path(model),
        tokenizer,
        policy=policy,
        revision=model.revision,
        # fp32 master weights trained under bf16 autocast: vLLM samples in bf16, as autocast computes
        dtype="bfloat16" if precision == "bf16" else model.dtype,
        seed=seed,
        gpu_memory_utilization=rollout.gpu_memory_utilization,
        enable_sleep_mode=rollout.enable_sleep_mode,
        sleep_level=rollout.sleep_level,
        max_model_len=max_model_len,
        max_num_seqs=rollout.batch_size,
        kv_cache_gb=rollout.kv_cache_gb,
        show_progress=show_progress,
        llm_kwargs=rollout.llm_kwargs,
        follow_policy=follow_policy,
    )
