"""Rollout engines: sample G completions per prompt (HF generate on CPU; colocated vLLM on GPUs).

`factory.make_engine` picks one from `rollout.engine`; both fulfil `base.RolloutEngine`.
"""
