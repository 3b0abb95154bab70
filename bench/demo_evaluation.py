"""The demo's evaluation as the evaluate stage sets it up: one definition for the benchmarks that time
it (bench/eval_batch.py, bench/eval_certainty.py, bench/stage_teardown.py).

The demo config composed from conf/ (as `make demo` composes it), the benchmark's items, the model
loaded as the stage loads it, engines built by `make_eval_engine` and `evaluate_prompts` (the runner
the stage calls), without progress bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DemoEvaluation:
    bench: Any  # BenchmarkConfig
    items: list[Any]  # Prompt
    policy: Any
    tokenizer: Any
    cfg: Any  # PipelineConfig

    def engine(self) -> tuple[Any, str]:
        """A new engine as the evaluate stage builds it, and the precision it generates in."""
        from pipeline.rollout.factory import make_eval_engine

        cfg = self.cfg
        return make_eval_engine(
            cfg.rollout,
            cfg.model,
            cfg.trainer.mixed_precision,
            self.policy,
            self.tokenizer,
            seed=self.bench.seed,
        )

    def run(self, engine: Any, precision: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(records, metrics) of one evaluation of every item with `engine`."""
        from pipeline.eval.runner import evaluate_prompts

        return evaluate_prompts(
            self.policy,
            self.tokenizer,
            self.items,
            self.bench,
            show_progress=False,
            precision=precision,
            engine=engine,
        )


def demo_evaluation(model_cache: str, benchmark: str = "arith", limit: int | None = None) -> DemoEvaluation:
    """The demo's `benchmark` (its first `limit` items) with the model dequantized in model_cache."""
    from pipeline.config.compose import compose_config
    from pipeline.data.screen import RecordScreen
    from pipeline.modeling.models import load_model_and_tokenizer
    from pipeline.tasks import load_benchmark

    cfg = compose_config([])
    cfg.model.cache_dir = model_cache
    bench = cfg.benchmarks[benchmark]
    items = load_benchmark(bench, cfg.data, cfg.model.system_prompt, RecordScreen("skip", "bench"))[:limit]
    policy, tokenizer = load_model_and_tokenizer(cfg.model, cfg.trainer.device)
    return DemoEvaluation(bench, items, policy, tokenizer, cfg)
