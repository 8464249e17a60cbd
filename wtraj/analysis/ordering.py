"""Recover the training order of shuffled checkpoints, with its direction.

Seriation finds the order up to reversal: a short open path through the
checkpoints (:mod:`wtraj.analysis._tour`), refined so that every checkpoint is
closer to its predecessors than its successors are, weighing farther lags more
(noise makes neighbouring late-training checkpoints ambiguous; the drift
towards farther checkpoints does not). The direction comes from what training
does to the weights: it moves far from the start early, then wanders near
the end (:func:`path_direction`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from wtraj.analysis._distances import PassOptions, check_int, prepare_nodes
from wtraj.analysis._tour import shortest_path_order, window_refine

# lags (in checkpoints) that the refinement compares; 12 resolves the
# late-training noise of the toy runs (tau 1.0), larger windows cost O(window^2) per checkpoint
DEFAULT_WINDOW = 12
# consecutive steps that differ by more than a factor e^1.1 = 3 start a new
# phase of training for the trend of step lengths
LOG_PHASE_JUMP = math.log(3.0)
# evidence (margin of rise_from_start between the two ends times sqrt(N)) that
# gives full confidence: the largest evidence of a wrong direction on the zoo's
# development part (0.46, a run stopped during its warm-up) gets 0.58
FULL_EVIDENCE = 3.0
# most confidence when the step lengths point the other way
DISAGREEING_CONFIDENCE = 0.6


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
    """

    forward: bool
    confidence: float
    z: float


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
    if s_total == 0 or variance_total == 0:
        return 0.0
    return (s_total - math.copysign(1, s_total)) / math.sqrt(variance_total)


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


def path_direction(D: np.ndarray, order: np.ndarray) -> Direction:
    """Decide which end of ``order`` is the start: the end the distance rises fast from.

    The margin ``rise_from_start`` of the first end minus that of the last
    decides (positive: forward). The confidence grows with the evidence, the
    margin times the square root of the number of checkpoints, up to 1 at
    ``FULL_EVIDENCE``; where the trend of step lengths (steps shrink as
    training converges) points the other way, the evidence disagrees and the
    confidence stays at most ``DISAGREEING_CONFIDENCE``.

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
    order : ndarray, shape (N,), int
        A seriation of the checkpoints, N >= 3.
    """
    margin = rise_from_start(D, order) - rise_from_start(D, order[::-1])
    steps = D[order[:-1], order[1:]]
    z = segmented_trend_z(np.log(np.maximum(steps, np.finfo(float).tiny)))
    strength = min(1.0, abs(margin) * math.sqrt(order.shape[0]) / FULL_EVIDENCE)
    # no margin at all keeps the seriation's own orientation
    forward = margin >= 0
    # shrinking steps (z < 0) agree with a forward path
    agrees = z == 0 or (z < 0) == forward
    ceiling = 1.0 if agrees else DISAGREEING_CONFIDENCE
    confidence = 0.5 + (ceiling - 0.5) * strength
    return Direction(forward=forward, confidence=confidence, z=z)


def order_nodes(D: np.ndarray, window: int = DEFAULT_WINDOW) -> tuple[np.ndarray, Direction]:
    """Order distinct checkpoints (``D`` has no zero off-diagonal entries), start first."""
    order = window_refine(D, shortest_path_order(D), window)
    direction = path_direction(D, order)
    if not direction.forward:
        order = order[::-1].copy()
    return order, direction


def order_checkpoints(
    X: Any,
    *,
    metric: str = "euclidean",
    return_confidence: bool = False,
    window: int = DEFAULT_WINDOW,
    backend: str | None = None,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
):
    """Recover the training order of the checkpoints of one run, earliest first.

    Parameters
    ----------
    X : array_like, path, checkpoint set or ndarray of shape (N, N)
        N checkpoints of one training run, in any order and in any form
        :func:`wtraj.pairwise` accepts, or their distance matrix with
        ``metric="precomputed"``.
    metric : str
        Distance between checkpoints (``"euclidean"`` by default) or
        ``"precomputed"``.
    return_confidence : bool
        Also return the confidence that the start is the right end.
    window : int
        How many checkpoints before and after each one the refinement of the
        order compares (see Notes).
    backend, memory_budget, progress, group
        The pass over the data that computes the distances, as in :func:`wtraj.pairwise`.

    Returns
    -------
    order : ndarray, shape (N,), int64
        Row indices of ``X`` in recovered training order.
    confidence : float
        Only with ``return_confidence``: in [0.5, 1], see :class:`Direction`.

    Notes
    -----
    1. The order up to reversal is a short open path through all checkpoints
       (2-opt and or-opt local search from a FastMap projection), refined by
       moving checkpoints up to ``window`` places to lower
       ``sum_k c_k sum_i D[o_i, o_{i+k}]`` with ``c_k = k + (k+1) + ... + window``
       for ``k = 1 .. window``; lag ``a`` then counts ``a`` times in a move's
       cost change, so a checkpoint is placed by its distances to checkpoints
       farther back and ahead, which SGD noise perturbs the least.
    2. The start is the end from which the distance rises fast and then
       flattens (:func:`rise_from_start`): training moves far early and
       wanders late, whatever the cadence, warm-up or momentum. The
       confidence grows with the margin between the two ends, and stays at
       most 0.6 where the trend of step lengths (a Mann-Kendall test within
       phases between jumps of more than 3x) points the other way. A
       fine-tune of a converged model, whose first checkpoints are not
       special, may come out backwards: with a low confidence.
    3. Identical checkpoints (zero distance) are placed next to each other,
       in row order.

    Time O(N^2 log N) for the neighbour lists and the direction test, plus
    the local search (few moves from the projection on trajectories), memory
    the N x N matrix. The result is deterministic.

    Raises
    ------
    ValueError
        Fewer than 3 distinct checkpoints (the direction needs two steps to
        compare), a bad distance matrix, or ``window < 1``.
    """
    window = check_int(window, "window", 1)
    options = PassOptions(backend, memory_budget, progress, group)
    nodes = prepare_nodes(X, metric, 3, "order_checkpoints", options)
    node_order, direction = order_nodes(nodes.D, window)
    order = nodes.rows_of(node_order)
    if return_confidence:
        return order, direction.confidence
    return order
