"""A Hugging Face ``TrainerCallback`` adding wtraj's trajectory metrics to the trainer's logs."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from wtraj.integrations._schedule import StepSchedule
from wtraj.monitor import TrajectoryMonitor


class TrajectoryTrainerCallback(TrainerCallback):
    """Follow the model's parameters and add step norm, turning angle and distances to the logs.

    The latest metrics are merged into the ``logs`` of every trainer log event
    (``logging_steps``), under ``prefix``. Callbacks run in list order and the
    trainer puts its reporting callbacks (TensorBoard, W&B, MLflow...) first, so
    add this one with :meth:`add_to`, which places it ahead of them::

        trainer = Trainer(model=model, args=args, train_dataset=data)
        TrajectoryTrainerCallback().add_to(trainer)
        trainer.train()

    Passed in ``Trainer(callbacks=[...])`` instead, only callbacks after it see the metrics.

    Parameters
    ----------
    every_n_steps : int
        Take a monitor step every this many optimizer steps (``state.global_step``).
    by_layer : bool
        Also log per-parameter values (``wtraj/step_norm/<parameter name>``).
    prefix : str
        Prefix of the logged names.
    **monitor_kwargs
        Passed to :class:`wtraj.TrajectoryMonitor`.

    Attributes
    ----------
    monitor : TrajectoryMonitor or None
        Created at ``on_train_begin``.
    """

    def __init__(
        self,
        every_n_steps: int = 1,
        by_layer: bool = False,
        prefix: str = "wtraj/",
        **monitor_kwargs,
    ):
        self._schedule = StepSchedule(every_n_steps)
        self.by_layer = by_layer
        self.prefix = prefix
        self.monitor_kwargs = monitor_kwargs
        self.monitor: TrajectoryMonitor | None = None
        self._pending: dict[str, float] = {}

    def add_to(self, trainer: Any) -> TrajectoryTrainerCallback:
        """Put this callback first in ``trainer``'s callbacks, before its reporters."""
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs):
        if model is None:
            raise ValueError("the trainer passed no model to the callback; nothing to monitor.")
        self.monitor = TrajectoryMonitor(model, **self.monitor_kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs):
        if self.monitor is None or not self._schedule.due(state.global_step):
            return
        metrics = self.monitor.step()
        self._pending = metrics.as_dict(prefix=self.prefix, by_layer=self.by_layer)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs):
        if logs is not None and self._pending and "loss" in logs:
            logs.update(self._pending)
            self._pending = {}
