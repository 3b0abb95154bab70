"""The trainer's AdamW (pipeline.rl.update.make_optimizer) against a float64 brute-force AdamW."""

from __future__ import annotations

import math

import pytest
import torch
from smoke_config import train_config

from pipeline.config import AlgorithmConfig
from pipeline.rl.update import make_optimizer


def adamw_reference(
    params: list[torch.Tensor], grads: list[list[torch.Tensor]], alg: AlgorithmConfig
) -> list[torch.Tensor]:
    """Loshchilov & Hutter's AdamW (torch's convention: decay by lr x wd), element by element in
    float64, from the written formula."""
    b1, b2 = alg.adam_betas
    out = []
    for i, p0 in enumerate(params):
        p = p0.double().flatten().tolist()
        m = [0.0] * len(p)
        v = [0.0] * len(p)
        for t, step_grads in enumerate(grads, start=1):
            g = step_grads[i].double().flatten().tolist()
            for j in range(len(p)):
                p[j] -= alg.lr * alg.weight_decay * p[j]
                m[j] = b1 * m[j] + (1 - b1) * g[j]
                v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j]
                m_hat = m[j] / (1 - b1**t)
                v_hat = v[j] / (1 - b2**t)
                p[j] -= alg.lr * m_hat / (math.sqrt(v_hat) + alg.adam_eps)
        out.append(torch.tensor(p, dtype=torch.float64).view_as(p0))
    return out


def small_policy() -> torch.nn.Module:
    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    policy[1].bias.requires_grad_(False)  # frozen parameters are not optimized
    return policy


@pytest.mark.parametrize("strategy", ["single", "ddp", "zero2", "fsdp2"])
def test_adamw_matches_the_formula(strategy: str) -> None:
    # Large lr and decay, betas and eps off their defaults: a swapped or dropped hyperparameter shows.
    overrides = {"lr": 1e-2, "adam_betas": [0.9, 0.99], "adam_eps": 1e-6, "weight_decay": 0.1}
    alg = train_config(overrides={f"algorithm.{k}": v for k, v in overrides.items()}).algorithm
    policy = small_policy()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in trainable]
    frozen = policy[1].bias.detach().clone()
    opt = make_optimizer(alg, policy, strategy)
    assert [id(p) for g in opt.param_groups for p in g["params"]] == [id(p) for p in trainable]
    gen = torch.Generator().manual_seed(1)
    grads = [[torch.randn(p.shape, generator=gen) for p in trainable] for _ in range(3)]
    for step_grads in grads:
        for p, g in zip(trainable, step_grads, strict=True):
            p.grad = g.clone()
        opt.step()
    expected = adamw_reference(start, grads, alg)
    for p, want in zip(trainable, expected, strict=True):
        torch.testing.assert_close(p.detach().double(), want, rtol=0, atol=1e-6)
    assert torch.equal(policy[1].bias, frozen)


def test_fused_only_where_parameters_are_plain_cpu_tensors() -> None:
    alg = train_config().algorithm
    policy = small_policy()
    assert make_optimizer(alg, policy, "single").defaults["fused"] is True
    assert make_optimizer(alg, policy, "ddp").defaults["fused"] is True
    # Sharded parameters (FSDP2 DTensors, DeepSpeed's flat partitions) keep torch's default.
    assert not make_optimizer(alg, policy, "fsdp2").defaults["fused"]
    assert not make_optimizer(alg, policy, "zero3").defaults["fused"]
