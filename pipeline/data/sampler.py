"""Which prompts a training step sees: a seeded reshuffle per epoch, a pure function of the step."""

from __future__ import annotations

import torch

from pipeline.types import Prompt


class PromptSampler:
    """Step k gets prompts [k*B, (k+1)*B) of the concatenated per-epoch permutations.

    Being a function of (seed, step) only, it needs no state to resume: the checkpoint's data
    position is the step.
    """

    def __init__(self, prompts: list[Prompt], prompts_per_step: int, seed: int) -> None:
        if not prompts:
            raise ValueError("no training prompts: the dataset is empty")
        self.prompts = prompts
        self.per_step = prompts_per_step
        self.seed = seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perms[epoch] = torch.randperm(len(self.prompts), generator=g).tolist()
        return self._perms[epoch]

    def batch(self, step: int) -> list[Prompt]:
        n = len(self.prompts)
        out = []
        for k in range(step * self.per_step, (step + 1) * self.per_step):
            out.append(self.prompts[self._perm(k // n)[k % n]])
        return out
