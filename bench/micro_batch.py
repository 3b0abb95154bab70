"""The trainer's gradient micro-batch on SmolLM2, as a callable: one definition for the benchmarks
that time it (bench/heap_retention.py, bench/vllm_colocation.py).

8 rows = one prompt of `prompt_len` random tokens x 8 completions of `completion_len` (a GRPO group),
the scoring pass with gradients + backward under `precision` (resolved: bf16 or no).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def smollm2(model_cache: str) -> torch.nn.Module:
    """SmolLM2-135M-Instruct as the pipeline loads it (dequantized to model_cache on first use), eval mode."""
    from pipeline.config.compose import compose_config
    from pipeline.modeling.models import load_model_and_tokenizer

    cfg = compose_config(["model=smollm2_135m"]).model
    cfg.cache_dir = model_cache
    model, _ = load_model_and_tokenizer(cfg)
    model.eval()
    return model


def gradient_micro_batch(
    model: torch.nn.Module, prompt_len: int, completion_len: int, precision: str
) -> Callable[[], None]:
    """A function running one gradient micro-batch (seeded tokens) and clearing the gradients."""
    from pipeline.modeling.precision import autocast
    from pipeline.rl.scoring import score_completions

    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompt = torch.randint(3, vocab, (1, prompt_len), generator=g).repeat(8, 1)
    ids = torch.cat([prompt, torch.randint(3, vocab, (8, completion_len), generator=g)], 1)  # [8, P + C]
    attn, mask = torch.ones_like(ids), torch.ones(8, completion_len)

    def gradient_pass() -> None:
        with autocast(precision, "cpu"):
            s = score_completions(model, ids, attn, prompt_len, mask, with_grad=True, with_certainty=True)
        s.logprobs.sum().backward()
        model.zero_grad(set_to_none=True)

    return gradient_pass
