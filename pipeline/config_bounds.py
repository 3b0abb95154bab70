"""The numeric ranges config values must lie in; `pipeline.config.build` checks them at stage start."""

from __future__ import annotations

from typing import Any

# Inclusive numeric ranges of config fields (None = unbounded): a value outside fails at stage start
# with the range, instead of deep inside a run (a zero batch size, a negative learning rate).
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "AlgorithmConfig.group_size": (1, None),
    "AlgorithmConfig.prompts_per_step": (1, None),
    "AlgorithmConfig.steps": (0, None),
    "AlgorithmConfig.temperature": (0, None),
    "AlgorithmConfig.top_p": (0, 1),
    "AlgorithmConfig.max_new_tokens": (1, None),
    "AlgorithmConfig.max_prompt_tokens": (1, None),
    "AlgorithmConfig.num_iterations": (1, None),
    "AlgorithmConfig.lr": (0, None),
    "AlgorithmConfig.warmup_ratio": (0, 1),
    "AlgorithmConfig.weight_decay": (0, None),
    "AlgorithmConfig.beta": (0, None),
    "AlgorithmConfig.clip_eps_low": (0, 1),
    "AlgorithmConfig.clip_eps_high": (0, None),
    "AlgorithmConfig.std_eps": (0, None),
    "AlgorithmConfig.micro_batch_size": (1, None),
    "AlgorithmConfig.micro_batch_tokens": (0, None),
    "AlgorithmConfig.scoring_chunk_tokens": (1, None),
    "RolloutConfig.batch_size": (1, None),
    "RolloutConfig.gpu_memory_utilization": (0, 1),
    "RolloutConfig.sleep_level": (1, 2),
    "TrainerConfig.threads": (0, None),
    "TrainerConfig.checkpoint_every": (1, None),
    "TrainerConfig.keep_last": (0, None),
    "TrainerConfig.log_completions": (0, None),
    "TrainerConfig.processes": (1, None),
    "TrainerConfig.max_nonfinite_steps": (0, None),
    "BenchmarkConfig.limit": (1, None),
    "BenchmarkConfig.max_new_tokens": (1, None),
    "BenchmarkConfig.batch_size": (1, None),
    "BenchmarkConfig.n_samples": (1, None),
    "BenchmarkConfig.temperature": (0, None),
    "BenchmarkConfig.top_p": (0, 1),
    "BenchmarkConfig.timeout_s": (0, None),
    "BenchmarkConfig.workers": (1, None),
    "DataConfig.limit": (1, None),
    "DataConfig.train_size": (1, None),
    "DataConfig.test_size": (0, None),
    "TrackingConfig.retry_s": (0, None),
}


def out_of_bounds(key: str, value: Any) -> str | None:
    """Why `value` of field `key` ("Class.field") is outside its range, with the range; None if inside."""
    if key not in BOUNDS or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    low, high = BOUNDS[key]
    if (low is not None and value < low) or (high is not None and value > high):
        allowed = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        return f"{value!r} is out of range; allowed values: {allowed}"
    return None
