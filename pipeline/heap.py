"""The process's C heap: keep the memory torch frees, so the next large tensor reuses mapped pages.

torch's CPU allocator takes every tensor from the C library's malloc. glibc serves a block above its
mmap threshold (128 KiB, rising dynamically to at most 32 MiB) with a fresh `mmap` and returns it with
`munmap` when freed, and trims the heap's free top beyond 128 KiB. So each large short-lived tensor
costs one page fault per 4 KiB page, and the kernel zeroes each page before the first write. A
gradient micro-batch of SmolLM2 makes and frees dozens of such tensors ([V, H] head-weight gradients
of 28 M elements, [chunk, V] logits in two dtypes, activations): on a 2-core AMD EPYC the `copy_`
kernels of a bf16 micro-batch spent 0.6-1.0 s of its 5.5-7 s in those faults (torch.profiler), 0.2-0.4 s
with the heap kept (`bench/heap_retention.py` times the whole micro-batch both ways).

`retain_freed_memory` raises both thresholds to their maximum, so blocks up to 2 GiB come from the heap
and freed ones stay there for reuse. The cost: resident memory stays at its high-water mark instead
of shrinking after a peak, and sits somewhat above it: torch asks for 64-byte aligned blocks, glibc
splits a small head off each and keeps up to 7 such heads per size in its thread cache, and each
one can keep two freed neighbours apart. A loop of 64 MiB tensors settles after 7-10 of them
(tests/unit/test_heap.py); a SmolLM2 gradient micro-batch's peak RSS went 3.2 -> 3.4 GB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# mallopt takes a C int: the largest threshold it accepts.
_INT_MAX = 2**31 - 1


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (the only one whose mallopt this module knows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (an AttributeError: not glibc, e.g. musl)
    except (OSError, AttributeError):
        return None
    return libc


def retain_freed_memory() -> bool:
    """Keep freed blocks up to 2 GiB in this process's heap from now on (process-wide; not undone).

    Returns whether it applied: False where the C library is not glibc or refused a setting, and then
    nothing changed that matters (allocation works as before)."""
    libc = _glibc()
    if libc is None:
        return False
    # Threshold first: a block mapped on its own is unmapped on free whatever the trim threshold.
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _INT_MAX)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
