"""intuitor-pipeline: INTUITOR (GRPO with a self-certainty reward) and its baselines, reproducibly."""
