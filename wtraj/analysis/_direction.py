"""Which end of an ordered path of checkpoints is the start of training.

Three cues of what training does to the weights: it moves far from the start
early, then wanders near the end (:func:`rise_from_start`); its steps shrink
as it converges (a trend of step lengths within phases); the weights' norm
grows. :func:`path_direction` weighs them and says how sure it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# consecutive steps that differ by more than a factor e^1.1 = 3 start a new
# phase of training for the trend of step lengths
LOG_PHASE_JUMP = math.log(3.0)
# evidence (margin of rise_from_start between the two ends times sqrt(N)) that
# gives full confidence: the largest evidence of a wrong direction on the zoo's
# development part (0.46, a run stopped during its warm-up) gets 0.58
FULL_EVIDENCE = 3.0
# most confidence when the step lengths or the norms point the other way
DISAGREEING_CONFIDENCE = 0.6
# a trend of step lengths or of norms votes on the direction when its
# Mann-Kendall |z| reaches this (one-sided p = 0.0013): a clear trend, not noise
CLEAR_TREND_Z = 3.0


@dataclass(frozen=True)
class Direction:
    """Evidence for which end of an ordered path is the start of training.

    Attributes
    ----------
    forward : bool
        True when the path as given runs from start to end.
    confidence : float
        In [0.5, 1]: 0.5 is a guess; see :func:`path_direction`, and the
        calibration table in bench/RESULTS.md (confidence against the
        fraction of right directions, on held-out training regimes too).
    z : float
        The Mann-Kendall statistic of step length against position: negative
        when steps shrink along the path as given.
    norm_z : float
        The Mann-Kendall statistic of the checkpoints' norms against
        position: positive when the norm grows along the path as given; 0
        where the norms are not known.
    """

    forward: bool
    confidence: float
    z: float
    norm_z: float = 0.0


def mann_kendall(values: np.ndarray) -> tuple[int, float]:
    """Mann-Kendall ``S`` of ``values`` (n,) and its variance under no trend.

    ``S = sum_{i<j} sign(values[j] - values[i])``; with no trend ``S`` is
    approximately normal with variance ``n (n - 1) (2 n + 5) / 18`` (ties count
    0, no tie correction). O(n^2) time, O(n) memory.
    """
    n = values.shape[0]
    s = 0
    for i in range(n - 1):
        s += int(np.sign(values[i + 1 :] - values[i]).sum())
    return s, n * (n - 1) * (2 * n + 5) / 18.0


def trend_z(s: int, variance: float) -> float:
    """Continuity-corrected ``z`` of a Mann-Kendall ``S`` and its variance; 0 without evidence."""
    if s == 0 or variance == 0:
        return 0.0
    return (s - math.copysign(1, s)) / math.sqrt(variance)


def segmented_trend_z(log_steps: np.ndarray, jump: float = LOG_PHASE_JUMP) -> float:
    """Trend ``z`` of log step lengths within phases, summed over phases.

    The steps are cut into phases wherever consecutive steps differ by more
    than ``exp(jump)`` (a data shift, a learning-rate step); ``S`` and its
    variance are summed over the phases, so that a new phase's large steps
    do not read as steps that grow. Continuity-corrected ``z``; 0 without
    evidence.
    """
    cuts = np.flatnonzero(np.abs(np.diff(log_steps)) > jump) + 1
    s_total, variance_total = 0, 0.0
    for phase in np.split(log_steps, cuts):
        s, variance = mann_kendall(phase)
        s_total += s
        variance_total += variance
    return trend_z(s_total, variance_total)


def rise_from_start(D: np.ndarray, path: np.ndarray) -> float:
    """How quickly the distance from ``path[0]`` rises along ``path``: its mean over its maximum, in [0, 1].

    From the start of training the distance rises fast and then flattens
    (early steps move far and in one direction, late ones wander near the
    end): a concave curve, mean well above half its maximum. Seen from the
    end, the same curve is convex. Unlike step lengths, it does not depend on
    the checkpoint cadence, warm-ups or momentum building up.
    """
    distances = D[path[0], path]
    largest = distances.max()
    return float(distances.mean() / largest) if largest > 0 else 0.0


def path_direction(D: np.ndarray, order: np.ndarray, norms: np.ndarray | None = None) -> Direction:
    """Decide which end of ``order`` is the start, from three cues of training.

    - distance: the margin ``rise_from_start`` of the first end minus that of
      the last (positive: forward); its strength, the margin times the square
      root of the number of checkpoints, reaches 1 at ``FULL_EVIDENCE``;
    - steps: they shrink as training converges (Mann-Kendall ``z`` within
      phases, :func:`segmented_trend_z`);
    - norms (where known): the weights' norm grows, as a step orthogonal to
      the weights adds its square to their squared norm and the noise of
      training is nearly orthogonal to them (Mann-Kendall ``z`` of ``norms``
      along the path).

    The distance decides, unless the norms clearly (``|z| >= CLEAR_TREND_Z``)
    point the other way and the steps do not clearly side with the distance:
    then the norms decide (a run stopped during its warm-up, whose distance
    rises as slowly from either end, or a fine-tune of a converged model,
    whose ends look alike). Where every cue agrees, the confidence is
    ``0.5 + 0.5 * strength``; where any points the other way, at most
    ``DISAGREEING_CONFIDENCE``: ``0.5 + 0.1 * strength`` with the distance,
    ``0.5 + 0.1 * (1 - strength)`` against it.

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
    order : ndarray, shape (N,), int
        A seriation of the checkpoints, N >= 3.
    norms : ndarray, shape (N,), float64, optional
        Euclidean norm of each checkpoint (row of ``D``).
    """
    margin = rise_from_start(D, order) - rise_from_start(D, order[::-1])
    steps = D[order[:-1], order[1:]]
    z = segmented_trend_z(np.log(np.maximum(steps, np.finfo(float).tiny)))
    norm_z = 0.0 if norms is None else trend_z(*mann_kendall(norms[order]))
    strength = min(1.0, abs(margin) * math.sqrt(order.shape[0]) / FULL_EVIDENCE)
    # no margin at all keeps the seriation's own orientation
    by_distance = margin >= 0
    # each trend's vote for "forward" where it is clear: shrinking steps, growing norms
    steps_vote = _clear_vote(-z)
    norm_vote = _clear_vote(norm_z)
    distance_vote = 1 if by_distance else -1
    against_distance = norm_vote == -distance_vote and steps_vote != distance_vote
    forward = by_distance != against_distance
    sign = 1 if forward else -1
    agrees = not against_distance and sign * -z >= 0 and sign * norm_z >= 0
    ceiling = DISAGREEING_CONFIDENCE - 0.5
    if agrees:
        confidence = 0.5 + 0.5 * strength
    elif against_distance:
        confidence = 0.5 + ceiling * (1.0 - strength)
    else:
        confidence = 0.5 + ceiling * strength
    return Direction(forward=forward, confidence=confidence, z=z, norm_z=norm_z)


def _clear_vote(z: float) -> int:
    """+1 or -1 for a trend ``z`` at least ``CLEAR_TREND_Z`` from 0 (by its sign), else 0."""
    return int(math.copysign(1, z)) if abs(z) >= CLEAR_TREND_Z else 0
