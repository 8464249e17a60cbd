"""Trajectory analysis from the distance matrix of checkpoints.

- :func:`order_checkpoints`: training order of shuffled checkpoints, with its direction.
- :func:`separate_trajectories`, :func:`trajectory_tree`: which run each checkpoint
  belongs to, also for runs that share their initialisation.
- :func:`detect_shifts`: data shifts and learning-rate drops along each run.
- :func:`assign`: the known run a new checkpoint belongs to, or none.

Every function takes checkpoints in any form :func:`wtraj.pairwise` accepts
(the distances are computed once, blockwise, with no N x D float64 copy) or a
distance matrix with ``metric="precomputed"``.
"""

from wtraj.analysis.assign import assign
from wtraj.analysis.ordering import order_checkpoints
from wtraj.analysis.separation import separate_trajectories, trajectory_tree
from wtraj.analysis.shifts import ShiftEvent, detect_shifts

__all__ = [
    "ShiftEvent",
    "assign",
    "detect_shifts",
    "order_checkpoints",
    "separate_trajectories",
    "trajectory_tree",
]
