"""When a trainer callback takes a monitor step: every n-th optimizer step, once."""

from __future__ import annotations


class StepSchedule:
    """Decides, from the trainer's global step counter, whether to monitor now.

    A counter that has not moved since the last monitored step (gradient
    accumulation calls the batch hooks several times per optimizer step) is
    never monitored twice.
    """

    def __init__(self, every_n_steps: int):
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer; got {every_n_steps!r}.")
        self.every_n_steps = every_n_steps
        self._last = None

    def due(self, global_step: int) -> bool:
        if global_step == self._last or global_step % self.every_n_steps != 0:
            return False
        self._last = global_step
        return True
