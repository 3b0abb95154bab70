"""Seconds per AdamW step over SmolLM2-135M's parameters (fp32, the trainer's master weights): torch's
fused CPU kernel (what `pipeline.rl.update.make_optimizer` builds on CPU) vs the default multi-tensor
(foreach) implementation the trainer used before. Same process, same gradients, rounds alternating;
after the timed steps, the largest weight difference between the two.

    .venv/bin/python bench/optimizer_step.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from micro_batch import smollm2  # bench/ is on sys.path when run as a script


def timed_steps(
    model: torch.nn.Module, start: dict[str, torch.Tensor], fused: bool, steps: int
) -> tuple[float, list[torch.Tensor]]:
    """Median s per step of a fresh AdamW from `start` (its first step, which allocates the state,
    untimed), and the weights after all steps."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(start[name])
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-5, fused=fused, foreach=None if fused else True)
    gen = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    opt.step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times), [p.detach().clone() for p in params]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and implementation")
    ap.add_argument("--model-cache", default="models/base", help="the dequantized SmolLM2 (make demo)")
    args = ap.parse_args()
    model = smollm2(args.model_cache)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    n_params = sum(p.numel() for p in model.parameters())
    ratios, fused_s, foreach_s = [], [], []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        result = {fused: timed_steps(model, start, fused, args.steps) for fused in order}
        fused_s.append(result[True][0])
        foreach_s.append(result[False][0])
        ratios.append(foreach_s[-1] / fused_s[-1])
        diff = max(float((a - b).abs().max()) for a, b in zip(result[True][1], result[False][1], strict=True))
        print(
            f"round {r + 1}: fused {fused_s[-1]:.3f} s/step, foreach {foreach_s[-1]:.3f} s/step, "
            f"ratio {ratios[-1]:.2f}, max |weight diff| {diff:.2e}",
            flush=True,
        )
    print(
        f"SUMMARY adamw_step params={n_params / 1e6:.1f}M fused={statistics.median(fused_s):.3f}s "
        f"foreach={statistics.median(foreach_s):.3f}s ratio={statistics.median(ratios):.2f} "
        f"threads={torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
