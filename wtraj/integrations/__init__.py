"""Trainer integrations: wtraj's monitor logging through the trainer's own loggers.

Each module imports its framework when it is imported, so ``import wtraj``
never loads Lightning or transformers; use
``wtraj.TrajectoryLightningCallback`` or ``wtraj.TrajectoryTrainerCallback``
(imported on first use).
"""
