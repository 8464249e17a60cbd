"""A PyTorch Lightning callback logging wtraj's trajectory metrics through the trainer's loggers."""

from __future__ import annotations

from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:
    from pytorch_lightning.callbacks import Callback

from wtraj.integrations._schedule import StepSchedule
from wtraj.integrations._values import loggable
from wtraj.monitor import TrajectoryMonitor


class TrajectoryLightningCallback(Callback):
    """Follow the LightningModule's parameters and log step norm, turning angle and distances.

    The metrics go to every logger of the Trainer (``trainer.loggers``) at each
    monitored step, under ``prefix``, e.g. ``wtraj/step_norm``, at the step where
    Lightning logs the loss of the batch that made the update (``self.log`` in
    ``training_step``), so the curves line up. Turning angles are in radians;
    the first one (no previous step) is left out rather than logged as NaN.

    Parameters
    ----------
    every_n_steps : int
        Take a monitor step every this many optimizer steps (``trainer.global_step``).
    by_layer : bool
        Also log per-parameter values (``wtraj/step_norm/<parameter name>``).
    prefix : str
        Prefix of the logged names.
    **monitor_kwargs
        Passed to :class:`wtraj.TrajectoryMonitor` (``mode``, ``offload``,
        ``sketch_dim``, ``include``, ``exclude``...).

    Attributes
    ----------
    monitor : TrajectoryMonitor or None
        Created at ``on_fit_start``; call ``monitor.mark_tested()`` from your
        own code when a version passes its tests.
    """

    def __init__(
        self,
        every_n_steps: int = 1,
        by_layer: bool = False,
        prefix: str = "wtraj/",
        **monitor_kwargs,
    ):
        super().__init__()
        self._schedule = StepSchedule(every_n_steps)
        self.by_layer = by_layer
        self.prefix = prefix
        self.monitor_kwargs = monitor_kwargs
        self.monitor: TrajectoryMonitor | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.monitor = TrajectoryMonitor(pl_module, **self.monitor_kwargs)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.monitor is None or not self._schedule.due(trainer.global_step):
            return
        values = loggable(self.monitor.step(), self.prefix, self.by_layer)
        # Lightning logs what training_step reports for the batch of optimizer step k at
        # step k - 1 (global_step has already counted the step here); the same step
        # puts this update beside that batch's loss
        step = trainer.global_step - 1
        # straight to the loggers, once per monitored step: pl_module.log_dict would
        # re-emit the last values at the following steps
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
