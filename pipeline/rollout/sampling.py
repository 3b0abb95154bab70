"""Per-request sampling for HF `generate`: temperature, top-p, then the Gumbel-max trick with
counter-based noise.

Why not `do_sample=True`: HF draws every row's token from one global RNG stream, so a completion
depends on which other requests share its batch, and on the batch order. Here the noise for
(request, position, token) is a hash of those three numbers, so completion j of prompt i is the same
whatever the batch size, the padding, the process count (a prompt keeps its global index when
prompts are sharded across processes) or the device (integer arithmetic only). argmax(z/T + Gumbel)
is an exact sample from softmax(z/T) restricted to the nucleus.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import torch
from transformers import LogitsProcessor

_M32 = 0xFFFFFFFF
# Seeds stay below 2**63: vLLM seeds a torch.Generator per request (64-bit signed is safe).
_SEED_BITS = 63


def step_seed(seed: int, step: int) -> int:
    """The rollout seed of training step `step` in a run seeded `seed`: distinct for every (seed, step)
    while step < 1,000,003 (the prime stride), so runs of two seeds never share a step's samples. Each
    completion's own seed derives from it (request_seed)."""
    return seed * 1_000_003 + step


def request_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of one completion, a stable hash of (call seed, global prompt index, sample index):
    reproducible across processes, Python versions and batchings (unlike hash())."""
    digest = hashlib.blake2b(f"{seed}:{prompt_index}:{sample_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> (64 - _SEED_BITS)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (Wellons' lowbias32 variant) on int64 tensors holding values < 2**32.

    Both multipliers are < 2**31, so every product fits in 63 bits: no signed overflow anywhere.
    """
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & _M32
    return x ^ (x >> 15)


@lru_cache(maxsize=8)
def _token_keys(vocab: int, device: torch.device) -> torch.Tensor:
    # [V] per-token hash, the same at every decode step: computed once per vocabulary and device.
    return mix32(torch.arange(vocab, dtype=torch.int64, device=device) + 0x9E3779B9)


def uniform_noise(row_keys: torch.Tensor, vocab: int) -> torch.Tensor:
    """[B, V] float64 uniforms in (0, 1) from [B] int64 keys (< 2**32), one per (row, position)."""
    token_keys = _token_keys(vocab, row_keys.device)
    bits = mix32(row_keys[:, None] ^ token_keys[None, :])  # [B, V] in [0, 2**32)
    return (bits.double() + 0.5) / 2.0**32


def nucleus_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """[B, V] bool: the smallest set of most likely tokens whose probability reaches top_p (at least one)."""
    probs = torch.softmax(logits.float(), dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_p.cumsum(dim=-1) - sorted_p  # probability of the strictly more likely tokens
    keep_sorted = mass_before < top_p
    keep_sorted[:, 0] = True
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


class SeededSampler(LogitsProcessor):
    """Turns greedy decoding into sampling with one noise stream per request.

    `seeds` [B] are request seeds (see request_seed); `prompt_width` is the padded prompt length of the
    batch, so the generation position is input_ids.shape[1] - prompt_width.
    """

    def __init__(self, seeds: list[int], prompt_width: int, temperature: float, top_p: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f"sampling needs temperature > 0, got {temperature} (use greedy decoding)")
        seeds_t = torch.tensor(seeds, dtype=torch.int64)
        # The 63-bit seed folded into one 32-bit key per request.
        self.keys = mix32(mix32(seeds_t & _M32) ^ (seeds_t >> 32))  # [B]
        self.prompt_width = prompt_width
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        position = input_ids.shape[1] - self.prompt_width
        z = scores.double() / self.temperature  # [B, V]
        if self.top_p < 1.0:
            z = z.masked_fill(~nucleus_mask(z, self.top_p), float("-inf"))
        keys = mix32(self.keys.to(z.device) ^ mix32(torch.tensor(position, dtype=torch.int64)))
        u = uniform_noise(keys, z.shape[-1])
        gumbel = -torch.log(-torch.log(u))
        # float32 out: `generate` only takes the argmax of what a processor returns.
        return (z + gumbel).float()
