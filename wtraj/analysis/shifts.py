"""Find the checkpoints where training dynamics change abruptly.

When the training data changes in the middle of a run, the loss jumps and so
does the step length, by an order of magnitude, while the path turns. Along
each run (recovered order, :func:`wtraj.order_checkpoints`), every step is
compared with the median of the ``baseline`` steps before it:

- ``kind="shift"``: the step is at least ``10 ** threshold`` times longer
  (default 10^0.5 = 3.2x) *and* the path turns there by at least
  ``SHIFT_ANGLE`` (70 degrees): the new data's gradient is unrelated to the
  old one. Steps also grow in ordinary training (a warm-up, momentum
  building up, a checkpoint cadence that gets sparser), but in the direction
  the run already had. After a shift the path settles into its new
  direction: the next step turns less than the long one did. A loss spike
  (a learning rate briefly too high) overshoots, and the next step turns
  back by more: it is no shift. Only steps with a full ``baseline`` of steps before
  them are compared: the first steps of training grow and turn fast, and a
  shift within them is not reported.
- ``kind="slowdown"``: the step, and the median of it and the ``baseline - 1``
  steps after it, are at least ``10 ** threshold`` times shorter than the
  median of the ``baseline`` steps before it that were not shifts (a lasting drop),
  which is what a learning-rate decay does; reported, not a shift.

Consecutive flagged steps of one kind are one event.

A learning-rate *increase* that turns the path and is followed by steps
that settle (a warm restart, a spike spread over two checkpoints) looks like
a shift and may be reported as one. The turning angle at
the checkpoint where the jump starts is reported beside each event.
Measured recall and false flags, on held-out training regimes too:
bench/RESULTS.md, "Trajectory analysis on the evaluation zoo".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from wtraj.analysis._distances import (
    PassOptions,
    check_int,
    check_labels,
    check_positive,
    prepare_nodes,
)
from wtraj.analysis._geometry import turning_angle
from wtraj.analysis.ordering import order_nodes

DEFAULT_THRESHOLD = 0.5
# a data shift turns the path by about a right angle (the new data's gradient
# is unrelated to the old), while longer steps from a warm-up, momentum building
# up or a sparser checkpoint cadence go on in the direction the run had
SHIFT_ANGLE = math.radians(70.0)
DEFAULT_BASELINE = 3
# the fewest distinct checkpoints a run needs for a step to be compared with earlier ones
MIN_RUN_NODES = 4


@dataclass(frozen=True)
class ShiftEvent:
    """One abrupt change of a run's dynamics.

    Attributes
    ----------
    index : int
        Row of ``X``: for ``"shift"``, the first checkpoint after the long step
        (the first one trained on the new data); for ``"slowdown"``, the
        checkpoint where the short steps begin.
    run : int
        Run label of the checkpoint.
    position : int
        Position of ``index`` in the run's recovered order (0 = start).
    kind : str
        ``"shift"`` or ``"slowdown"``.
    score : float
        For shifts ``log10(step / median of the baseline steps before it)``
        (positive); for slowdowns the larger (weaker) of the log10 ratios of
        the step and of the median after to the median before (negative).
    turning_angle : float
        Angle in radians between the step before and the step at the event
        (0 = straight on, pi = back); NaN when there is no step before.
    """

    index: int
    run: int
    position: int
    kind: str
    score: float
    turning_angle: float


def run_events(
    D: np.ndarray, order: np.ndarray, threshold: float, baseline: int
) -> list[tuple[int, str, float, float]]:
    """``(position, kind, score, angle)`` of each event along one ordered run.

    Consecutive steps flagged with the same kind are one event, reported at
    the strongest of them.
    """
    steps = D[order[:-1], order[1:]]
    # turns[i - 1]: the angle between step i - 1 and step i
    turns = turning_angle(steps[:-1], steps[1:], D[order[:-2], order[2:]])
    flagged = []
    ordinary = [float(steps[0])]
    for i in range(1, steps.shape[0]):
        reference = float(np.median(steps[max(0, i - baseline) : i]))
        score = math.log10(steps[i] / reference)
        # a shift needs a full baseline: the first steps of training grow and
        # turn fast (momentum building up, a warm-up), one or two are no reference
        # after a shift the path settles into the new direction (it turns less on
        # the next step); a loss spike overshoots and the next step comes back
        settles = i == turns.shape[0] or turns[i] < turns[i - 1]
        if i >= baseline and score >= threshold and turns[i - 1] >= SHIFT_ANGLE and settles:
            flagged.append((i, "shift", score))
            continue
        ordinary.append(float(steps[i]))
        # a slowdown must last: the median of this and the next steps drops
        # below the steps before, leaving out the long steps of a shift
        following = steps[i : i + baseline]
        calm = float(np.median(ordinary[-baseline - 1 : -1]))
        if following.shape[0] >= 2:
            drop = max(math.log10(steps[i] / calm), math.log10(float(np.median(following)) / calm))
            if drop <= -threshold:
                flagged.append((i, "slowdown", drop))
    events: list[tuple[int, str, float, float]] = []
    previous = None
    for i, kind, score in flagged:
        if previous is not None and previous[0] == i - 1 and previous[1] == kind:
            if abs(score) <= abs(events[-1][2]):
                previous = (i, kind)
                continue
            events.pop()
        angle = float(turns[i - 1])
        position = i + 1 if kind == "shift" else i
        events.append((position, kind, score, angle))
        previous = (i, kind)
    return events


def detect_shifts(
    X: Any,
    labels: np.ndarray | None = None,
    *,
    metric: str = "euclidean",
    threshold: float = DEFAULT_THRESHOLD,
    baseline: int = DEFAULT_BASELINE,
    norms: Any = None,
    backend: str | None = None,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
) -> list[ShiftEvent]:
    """Checkpoints where a run's step length jumps (data shifts) or drops (learning-rate decay).

    Parameters
    ----------
    X : array_like, path, checkpoint set or ndarray of shape (N, N)
        Checkpoints in any order and in any form :func:`wtraj.pairwise`
        accepts, or their distance matrix with ``metric="precomputed"``.
    labels : ndarray of int, shape (N,), optional
        Run of each checkpoint; found with :func:`wtraj.separate_trajectories`
        when None. Pass ``np.zeros(N, int)`` for checkpoints of one run.
    metric : str
        ``"euclidean"`` (default), another :func:`wtraj.pairwise` metric, or
        ``"precomputed"``.
    threshold : float
        ``|log10(step ratio)|`` from which a change is an event (see the
        module docstring for the rule).
    baseline : int
        Number of earlier steps whose median a step is compared with.
    norms : array_like, shape (N,), optional
        With ``metric="precomputed"``: the checkpoints' norms, for
        :func:`wtraj.separate_trajectories` (without labels) and for the
        direction of each run (:func:`wtraj.order_checkpoints`).
    backend, memory_budget, progress, group
        The pass over the data that computes the distances, as in :func:`wtraj.pairwise`.

    Returns
    -------
    list of ShiftEvent
        Sorted by run, then position. Runs with fewer than 4 distinct
        checkpoints have no steps to compare and give no events; a shift is
        reported from position ``baseline + 1`` on.

    Raises
    ------
    ValueError
        Fewer than 4 distinct checkpoints in all, labels of the wrong shape,
        a non-positive threshold or baseline, or a bad distance matrix.
    """
    threshold = check_positive(threshold, "threshold")
    baseline = check_int(baseline, "baseline", 1)
    options = PassOptions(backend, memory_budget, progress, group)
    nodes = prepare_nodes(X, metric, MIN_RUN_NODES, "detect_shifts", options, norms)
    if labels is None:
        from wtraj.analysis.separation import separate_nodes

        node_labels, _ = separate_nodes(nodes.D, None, nodes.norms)
        labels = node_labels[nodes.node_of]
    labels = check_labels(labels, nodes.n_rows)
    events = []
    for run in np.unique(labels):
        # the run's distinct checkpoints, each reported at its first row in the run
        rows = np.flatnonzero(labels == run)
        run_nodes, first = np.unique(nodes.node_of[rows], return_index=True)
        if run_nodes.shape[0] < MIN_RUN_NODES:
            continue
        D = nodes.D[np.ix_(run_nodes, run_nodes)]
        order, _ = order_nodes(D, norms=None if nodes.norms is None else nodes.norms[run_nodes])
        for position, kind, score, angle in run_events(D, order, threshold, baseline):
            row = int(rows[first[order[position]]])
            events.append(ShiftEvent(row, int(run), position, kind, score, angle))
    return events
