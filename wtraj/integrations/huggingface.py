"""A Hugging Face ``TrainerCallback`` adding wtraj's trajectory metrics to the trainer's logs."""

from __future__ import annotations

import sys
import warnings
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from wtraj.integrations._schedule import StepSchedule
from wtraj.integrations._values import loggable
from wtraj.monitor import TrajectoryMonitor


class TrajectoryTrainerCallback(TrainerCallback):
    """Follow the model's parameters and add step norm, turning angle and distances to the logs.

    The latest metrics are merged into the ``logs`` of every training log event
    (``logging_steps``) under ``prefix``, so every reporter (TensorBoard, W&B,
    MLflow...) receives them, and into ``trainer.state.log_history`` (saved in
    each checkpoint's ``trainer_state.json``)::

        trainer = Trainer(model=model, args=args, train_dataset=data,
                          callbacks=[TrajectoryTrainerCallback()])

    Callbacks see a log event in list order and the trainer puts its reporters
    before the callbacks passed to it, so this callback moves itself to the
    front of the trainer's callbacks when the trainer announces it
    (``on_init_end``, or ``on_train_begin`` after ``trainer.add_callback``).

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

    Notes
    -----
    Turning angles are in radians; the first one (no previous step) is left out
    of the logs rather than logged as NaN.
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
        """Put this callback first in ``trainer``'s callbacks (also where it is already listed)."""
        _move_to_front(trainer.callback_handler, self)
        return self

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs):
        self._go_first()

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs):
        if model is None:
            raise ValueError("the trainer passed no model to the callback; nothing to monitor.")
        self._go_first()
        self.monitor = TrajectoryMonitor(model, **self.monitor_kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs):
        if self.monitor is None or not self._schedule.due(state.global_step):
            return
        self._pending = loggable(self.monitor.step(), self.prefix, self.by_layer)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs):
        if logs is None or not self._pending or "loss" not in logs:
            return
        logs.update(self._pending)
        # Trainer.log appends a copy of the logs to the history before the callbacks run
        latest = state.log_history[-1] if state.log_history else None
        if latest is not None and latest.get("step") == state.global_step and "loss" in latest:
            latest.update(self._pending)
        self._pending = {}

    def _go_first(self) -> None:
        handler = _calling_handler(self)
        if handler is None:
            warnings.warn(
                "TrajectoryTrainerCallback could not find the trainer's callback list to go ahead of "
                "its reporters; reporters listed before it will not see wtraj's values. "
                "Use TrajectoryTrainerCallback().add_to(trainer).",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        _move_to_front(handler, self)


def _calling_handler(callback: TrajectoryTrainerCallback) -> CallbackHandler | None:
    """The ``CallbackHandler`` whose event loop is calling ``callback`` now, if any.

    The handler passes callbacks the trainer's objects but not itself, so it is
    found on the call stack: the ``self`` of the ``CallbackHandler.call_event``
    frame that lists this callback.
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, CallbackHandler) and any(cb is callback for cb in owner.callbacks):
            return owner
        frame = frame.f_back
    return None


def _move_to_front(handler: CallbackHandler, callback: TrajectoryTrainerCallback) -> None:
    # in place: the handler may be iterating over this list right now; moving the
    # current item from index k to 0 keeps the items after k at their next index
    callbacks = handler.callbacks
    for index, cb in enumerate(callbacks):
        if cb is callback:
            if index == 0:
                return
            del callbacks[index]
            break
    callbacks.insert(0, callback)
