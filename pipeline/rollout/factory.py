"""Build the rollout engine a training run's config selects (`rollout.engine`: hf or vllm)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pipeline.config import AlgorithmConfig, ConfigError, ModelConfig, RolloutConfig, TrainConfig
from pipeline.modeling.models import resolve_model_path
from pipeline.modeling.precision import Precision, generation_precision, resolve_mixed_precision
from pipeline.registry import Registry
from pipeline.rollout.base import RolloutEngine
from pipeline.rollout.hf import HFRolloutEngine

T = TypeVar("T")


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
    vLLM (imported only then) that follows the policy's weights. The only place a training run's
    engine is built (the Trainer calls it; the train stage, the Hydra app, the benches and the tests
    all go through the Trainer)."""
    return _builder(ENGINES, cfg.rollout.engine)(
        cfg, policy, tokenizer, show_progress=show_progress, synced=synced
    )


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
    engine (`rollout.engine`), so a model is evaluated as it was sampled during training."""
    return _builder(EVAL_ENGINES, rollout.engine)(
        rollout, model, mixed_precision, policy, tokenizer, seed=seed
    )


def _builder(registry: Registry[T], engine: str) -> T:
    if engine not in registry:
        raise ConfigError(f"rollout.engine: unknown engine {engine!r}; allowed: {list(registry)}")
    return registry[engine]


def _hf_engine(
    cfg: TrainConfig,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    show_progress: bool,
    synced: bool,
) -> RolloutEngine:
    return HFRolloutEngine(
        policy,
        tokenizer,
        show_progress=show_progress,
        synced=synced,
        # One iteration: the old log-probs are the gradient pass's own (detached), so the only
        # thing the policy's no-grad pass would add is self-certainty and entropy, which
        # generate's logits already hold: recorded there, the pass is skipped.
        record_token_scores=cfg.algorithm.num_iterations == 1,
        certainty_temperature=cfg.algorithm.certainty_temperature(),
    )


def _vllm_train_engine(
    cfg: TrainConfig,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    show_progress: bool,
    synced: bool,
) -> RolloutEngine:
    del synced  # vLLM generates on its own weights copy: no collective per decoder call
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
        max_model_len=cfg.rollout.max_model_len or default_max_model_len(cfg.algorithm),
        show_progress=show_progress,
    )


def _hf_eval_engine(
    rollout: RolloutConfig,
    model: ModelConfig,
    mixed_precision: str,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
) -> tuple[RolloutEngine | None, Precision]:
    """None (the runner builds the HF engine, which records each answer's certainty while it
    generates) and the HF engine's generation precision (the weights' own on CPU)."""
    return None, generation_precision(mixed_precision, str(next(policy.parameters()).device))


def _vllm_eval_engine(
    rollout: RolloutConfig,
    model: ModelConfig,
    mixed_precision: str,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
) -> tuple[RolloutEngine | None, Precision]:
    """A vLLM engine on `model`'s folder at the training passes' precision (bf16 where autocast runs
    in bf16), not following the policy (its weights do not change), recording each answer's
    self-certainty from its decode logits (no scoring pass afterwards)."""
    precision = resolve_mixed_precision(mixed_precision, str(next(policy.parameters()).device))
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
        record_certainty=True,
    )
    return engine, precision


# `rollout.engine` -> the builder of a training run's engine, and of evaluation's.
# (The builders' signatures are those of make_engine and make_eval_engine, which call them.)
ENGINES: Registry[Callable[..., RolloutEngine]] = Registry(
    "rollout engine", {"hf": _hf_engine, "vllm": _vllm_train_engine}
)
EVAL_ENGINES: Registry[Callable[..., tuple[RolloutEngine | None, Precision]]] = Registry(
    "evaluation engine", {"hf": _hf_eval_engine, "vllm": _vllm_eval_engine}
)


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
    record_certainty: bool = False,
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
        record_certainty=record_certainty,
    )
