"""Non-finite updates: skipped and counted; too many in a row stop the run with a message.

A NaN or infinite loss makes every gradient non-finite, and so the global gradient norm, which every
process has after the reduction: the decision to skip is the same on all processes without another
collective. A skipped optimizer step leaves the weights and the optimizer state as they were, so every
checkpoint written (before or during such a run of steps) holds good weights.

No torch import here: the stage entry points import `TrainingDiverged` to map it to an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass


class TrainingDiverged(RuntimeError):
    """K training steps in a row had a non-finite loss or gradient; the message says where to resume."""


@dataclass
class NonFiniteGuard:
    # Stop after this many training steps in a row with a skipped update (0 = never stop).
    limit: int
    consecutive: int = 0
    total: int = 0
    first_bad_step: int | None = None

    def record(self, step: int, skipped: int) -> dict[str, float]:
        """Count this step's skipped optimizer steps; returns the step's metrics."""
        if skipped:
            self.consecutive += 1
            self.total += 1
            if self.first_bad_step is None:
                self.first_bad_step = step
        else:
            self.consecutive = 0
            self.first_bad_step = None
        return {"update/skipped": float(skipped), "update/skipped_steps_total": float(self.total)}

    @property
    def tripped(self) -> bool:
        """`limit` steps in a row were skipped: the run must stop."""
        return self.limit > 0 and self.consecutive >= self.limit

    def diverged(self, step: int, last_checkpoint: object | None, why: str) -> TrainingDiverged:
        """The error that stops a tripped run, naming the skipped steps and the last good checkpoint."""
        where = last_checkpoint or "none written yet (trainer.checkpoint_every)"
        return TrainingDiverged(
            f"stopped: {self.consecutive} training steps in a row had a non-finite loss or gradient "
            f"(steps {self.first_bad_step}-{step}; last: {why}); their updates were skipped, so the "
            f"weights are unchanged by them. Last good checkpoint: {where}. Rerunning resumes from it "
            "and meets the same steps: lower algorithm.lr, check the rewards, or raise "
            "trainer.max_nonfinite_steps."
        )
