"""Rewards: a registry of name -> fn(ScoredBatch, RewardSpec) -> Tensor[B, G].

A method is a weighted sum of registry rewards (see `combine`). Nothing registers itself at import
time: the registry is the explicit table in `registry.py`.
"""
