"""Recover the training order of shuffled checkpoints, with its direction.

Seriation finds the order up to reversal: a short open path through the
checkpoints (:mod:`wtraj.analysis._tour`), refined so that every checkpoint is
closer to its predecessors than its successors are, weighing farther lags more
(noise makes neighbouring late-training checkpoints ambiguous; the drift
towards farther checkpoints does not). The direction comes from what training
does to the weights: steps shrink as training converges.
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
# phase of training for the direction test
LOG_PHASE_JUMP = math.log(3.0)


@dataclass(frozen=True)
class Direction:
    """Evidence for which end of an ordered path is the start of training.

    Attributes
    ----------
    forward : bool
        True when the path as given runs from start to end.
    confidence : float
        In [0.5, 1]: ``Phi(|z|)``, the standard normal CDF of the Mann-Kendall
        trend statistic of the step lengths within phases (see
        :func:`segmented_trend_z`). 0.5 means the step lengths show
        no trend (the direction is a guess), 0.975 a trend significant at the
        5 % level (two-sided).
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


def path_direction(D: np.ndarray, order: np.ndarray) -> Direction:
    """Decide which end of ``order`` is the start: the end where steps are long.

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
    order : ndarray, shape (N,), int
        A seriation of the checkpoints, N >= 3.
    """
    steps = D[order[:-1], order[1:]]
    z = segmented_trend_z(np.log(np.maximum(steps, np.finfo(float).tiny)))
    confidence = 0.5 * (1.0 + math.erf(abs(z) / math.sqrt(2.0)))
    # no trend at all (z == 0) keeps the seriation's own orientation
    return Direction(forward=z <= 0, confidence=confidence, z=z)


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
    backend, memory_budget, progress
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
    2. The start is the end from which step lengths shrink: a Mann-Kendall
       trend test on the logarithms of the steps along the path, within the
       phases between jumps of more than 3x (a data shift, a learning-rate
       step), pooled; the confidence is ``Phi(|z|)``. Runs whose steps grow
       throughout (a learning-rate warm-up over the whole run) come out
       backwards, with a confidence that says the evidence is weak.
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
    nodes = prepare_nodes(X, metric, 3, "order_checkpoints", PassOptions(backend, memory_budget, progress))
    node_order, direction = order_nodes(nodes.D, window)
    order = nodes.rows_of(node_order)
    if return_confidence:
        return order, direction.confidence
    return order
