"""The issue-6 GRPO step as `dvc exp run -S` overrides of conf/: one definition for every benchmark
that times a training step (bench/vs_trl.py, bench/rollout_throughput.py --grpo-steps).

SmolLM2-135M-Instruct, MATH train prompts, 4 prompts x G 8 per step, temperature 0.9, beta 0.005,
lr 1e-6, bnpo loss, 1 iteration, no resume (every run starts fresh).
"""

from __future__ import annotations

from pathlib import Path

GROUP, PROMPTS = 8, 4


def step_overrides(
    *,
    steps: int,
    new_tokens: int,
    threads: int,
    out_dir: str,
    model_cache: str,
    extra: list[str] | None = None,
) -> list[str]:
    """Overrides for a run of `steps` steps (each its own prompts) writing to out_dir; `extra` last."""
    return [
        "data=math",
        f"data.limit={PROMPTS * steps}",
        f"algorithm.steps={steps}",
        f"algorithm.group_size={GROUP}",
        f"algorithm.prompts_per_step={PROMPTS}",
        f"algorithm.max_new_tokens={new_tokens}",
        "algorithm.temperature=0.9",
        "algorithm.beta=0.005",
        "algorithm.lr=1e-6",
        "algorithm.loss_aggregation=bnpo",
        "algorithm.num_iterations=1",
        f"trainer.threads={threads}",
        "trainer.resume=false",
        f"trainer.output_dir={out_dir}",
        f"model.cache_dir={Path(model_cache).resolve()}",
        *(extra or []),
    ]
