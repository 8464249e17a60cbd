"""Recover the training order of shuffled checkpoints, with its direction.

Seriation finds the order up to reversal: a short open path through the
checkpoints (:mod:`wtraj.analysis._tour`), refined so that every checkpoint is
closer to its predecessors than its successors are, weighing farther lags more
(noise makes neighbouring late-training checkpoints ambiguous; the drift
towards farther checkpoints does not). The direction comes from what training
does to the weights: it moves far from the start early, then wanders near
the end; its steps shrink as it converges; the weights' norm grows
(:func:`wtraj.analysis._direction.path_direction`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wtraj.analysis._direction import Direction, path_direction
from wtraj.analysis._distances import PassOptions, check_int, prepare_nodes
from wtraj.analysis._tour import shortest_path_order, window_refine

# lags (in checkpoints) that the refinement compares; 12 resolves the
# late-training noise of the toy runs (tau 1.0), larger windows cost O(window^2) per checkpoint
DEFAULT_WINDOW = 12
def turn_end_segment(D: np.ndarray, norms: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``order`` with the end segment reversed whose other end joins the rest better, or ``order`` itself.

    After a jump (a data shift) the checkpoints that follow may lie about as
    far from the start as from the checkpoint before the jump; distances
    alone then cannot tell which end of the segment before the jump joins
    it. Reversing the prefix ``order[:c]`` replaces the joint edge
    ``(order[c-1], order[c])`` by ``(order[0], order[c])`` (a suffix
    likewise). Among the reversals that lower the cost ``D + |norm change|``
    of the joint edge and the norm change across it (the norm moves little
    between neighbouring checkpoints), the one that saves the most is made.

    :func:`order_nodes` refines the turned order over lags again, but keeps
    it unrefined where the refinement turns an end segment back, that is,
    where this function would turn the refined order again: a run whose
    path curls back towards its earlier checkpoints as its steps die away
    (a cosine schedule's end) lies nearer them at its last checkpoints,
    which the refinement's longer lags read as an earlier place.

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
    norms : ndarray, shape (N,), float64
    order : ndarray, shape (N,), int
        A seriation, N >= 3.
    """
    o, cut = order, np.arange(2, order.shape[0] - 1)
    if cut.size == 0:
        return order
    # prefix reversals: order[c-1] -> order[c] becomes order[0] -> order[c]
    old_change = np.abs(norms[o[cut - 1]] - norms[o[cut]])
    old_cost = D[o[cut - 1], o[cut]] + old_change
    prefix_change = np.abs(norms[o[0]] - norms[o[cut]])
    prefix_saving = old_cost - (D[o[0], o[cut]] + prefix_change)
    prefix_saving[prefix_change >= old_change] = 0.0
    # suffix reversals: order[c-1] -> order[c] becomes order[c-1] -> order[-1]
    suffix_change = np.abs(norms[o[cut - 1]] - norms[o[-1]])
    suffix_saving = old_cost - (D[o[cut - 1], o[-1]] + suffix_change)
    suffix_saving[suffix_change >= old_change] = 0.0
    if max(prefix_saving.max(), suffix_saving.max()) <= 0:
        return order
    if prefix_saving.max() >= suffix_saving.max():
        c = cut[np.argmax(prefix_saving)]
        return np.concatenate([o[:c][::-1], o[c:]])
    c = cut[np.argmax(suffix_saving)]
    return np.concatenate([o[:c], o[c:][::-1]])


def order_nodes(
    D: np.ndarray, window: int = DEFAULT_WINDOW, norms: np.ndarray | None = None
) -> tuple[np.ndarray, Direction]:
    """Order distinct checkpoints (``D`` has no zero off-diagonal entries, ``norms`` theirs), start first."""
    order = window_refine(D, shortest_path_order(D), window)
    if norms is not None:
        turned = turn_end_segment(D, norms, order)
        if turned is not order:
            refined = window_refine(D, turned, window)
            # a refinement that turns an end segment back is not kept (see turn_end_segment)
            order = refined if turn_end_segment(D, norms, refined) is refined else turned
    direction = path_direction(D, order, norms)
    if not direction.forward:
        order = order[::-1].copy()
    return order, direction


def order_checkpoints(
    X: Any,
    *,
    metric: str = "euclidean",
    return_confidence: bool = False,
    window: int = DEFAULT_WINDOW,
    norms: Any = None,
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
    norms : array_like, shape (N,), optional
        With ``metric="precomputed"``: the checkpoints' Euclidean norms (for
        example ``wtraj.trajectory_stats(X).norms``), one cue of the
        direction. Euclidean data bring their own, from the same pass as the
        distances; other metrics and a matrix without norms go without.
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
       farther back and ahead, which SGD noise perturbs the least. Where the
       norms are known, an end segment whose far end joins the rest with a
       smaller change of norm is turned round (checkpoints after a data shift
       that lie back near the start, :func:`turn_end_segment`).
    2. The start is the end from which the distance rises fast and then
       flattens (:func:`wtraj.analysis._direction.rise_from_start`): training moves far early and
       wanders late, whatever the cadence, warm-up or momentum. Where the
       norms are known and grow clearly the other way (Mann-Kendall
       ``|z| >= 3``) while the step lengths do not clearly shrink the
       distance's way, the norms decide: a run stopped during its warm-up
       or a fine-tune of a converged model, whose ends the distance does not
       tell apart. The confidence grows with the margin between the two
       ends, and stays at most 0.6 where the trend of step lengths (a
       Mann-Kendall test within phases between jumps of more than 3x) or of
       the norms points the other way (:func:`wtraj.analysis._direction.path_direction`).
    3. Identical checkpoints (zero distance) are placed next to each other,
       in row order.

    Time O(N^2 log N) for the neighbour lists and the direction test, plus
    the local search (few moves from the projection on trajectories), memory
    the N x N matrix. The result is deterministic.

    Raises
    ------
    ValueError
        Fewer than 3 distinct checkpoints (the direction needs two steps to
        compare), a bad distance matrix, ``window < 1``, or ``norms`` of the
        wrong shape, negative, or given with data.
    """
    window = check_int(window, "window", 1)
    options = PassOptions(backend, memory_budget, progress, group)
    nodes = prepare_nodes(X, metric, 3, "order_checkpoints", options, norms)
    node_order, direction = order_nodes(nodes.D, window, nodes.norms)
    order = nodes.rows_of(node_order)
    if return_confidence:
        return order, direction.confidence
    return order
