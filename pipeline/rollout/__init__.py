"""Rollout engines: sample G completions per prompt (HF generate on CPU; vLLM on GPUs, later)."""
