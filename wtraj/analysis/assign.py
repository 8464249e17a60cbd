"""Place a new checkpoint on one of the known runs, or on none.

A checkpoint of a known run lies between two consecutive checkpoints of that
run, so its nearest known checkpoint is at most about one step away. The rule:
the nearest known checkpoint ``j`` (of run ``labels[j]``) accepts the new one
when their distance is at most ``max_ratio`` times the longer of ``j``'s two
steps along its run (recovered order); otherwise the answer is -1 (an unseen
run). A checkpoint of an unseen run from another initialisation is several
steps away from every known checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from wtraj.analysis._distances import (
    PassOptions,
    check_labels,
    check_positive,
    distance_matrix,
    distinct_nodes,
    pairwise_with,
)
from wtraj.analysis.ordering import order_nodes

DEFAULT_MAX_RATIO = 1.5


def local_steps(D: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)``: for each checkpoint, the longer of its two steps along its run (0 if alone)."""
    scale = np.zeros(D.shape[0])
    for run in np.unique(labels):
        rows = np.flatnonzero(labels == run)
        nodes = distinct_nodes(D[np.ix_(rows, rows)])
        m = nodes.D.shape[0]
        if m == 1:
            continue
        order = order_nodes(nodes.D)[0] if m >= 3 else np.arange(m)
        steps = nodes.D[order[:-1], order[1:]]
        node_scale = np.zeros(m)
        node_scale[order[:-1]] = steps
        node_scale[order[1:]] = np.maximum(node_scale[order[1:]], steps)
        scale[rows] = node_scale[nodes.node_of]
    return scale


def assign(
    new_checkpoint: Any,
    X: Any,
    labels: Any,
    *,
    metric: str = "euclidean",
    max_ratio: float = DEFAULT_MAX_RATIO,
    backend: str | None = None,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
) -> tuple[Any, Any]:
    """Which known run a new checkpoint belongs to, or -1 for none.

    Parameters
    ----------
    new_checkpoint : array_like of shape (D,) or (M, D), path(s) or checkpoint set
        One checkpoint (flattened weights, or one checkpoint file) or M of
        them (rows, a list of files, a folder, :func:`wtraj.open`). With
        ``metric="precomputed"``: their distances to the rows of ``X``,
        shape (N,) or (M, N).
    X : array_like, path, checkpoint set or ndarray of shape (N, N)
        The known checkpoints, or their distance matrix with ``metric="precomputed"``.
    labels : array_like of int, shape (N,)
        Run of each known checkpoint (for example from
        :func:`wtraj.separate_trajectories`).
    metric : str
        ``"euclidean"`` (default), another :func:`wtraj.pairwise` metric, or
        ``"precomputed"``.
    max_ratio : float
        How far, in steps of the nearest run, a checkpoint may lie and still
        belong to it (module docstring).
    backend, memory_budget, progress, group
        The passes over the data that compute the distances, as in :func:`wtraj.pairwise`.

    Returns
    -------
    run : int or ndarray of int, shape (M,)
        Run label, or -1 when no run is close enough.
    distance : float or ndarray, shape (M,)
        Distance to the nearest known checkpoint.

    Raises
    ------
    ValueError
        Labels of the wrong shape, shapes that do not match, a non-positive
        ``max_ratio`` or a bad distance matrix.
    """
    max_ratio = check_positive(max_ratio, "max_ratio")
    options = PassOptions(backend, memory_budget, progress, group)
    D = distance_matrix(X, metric, options=options)
    n = D.shape[0]
    labels = check_labels(labels, n, "known checkpoint")
    to_known, single = _distances_to_known(new_checkpoint, X, metric, n, options)
    nearest = np.argmin(to_known, axis=1)
    distance = to_known[np.arange(to_known.shape[0]), nearest]
    scale = local_steps(D, labels)[nearest]
    run = np.where(distance <= max_ratio * scale, labels[nearest], -1).astype(np.int64)
    if single:
        return int(run[0]), float(distance[0])
    return run, distance


def _distances_to_known(
    new_checkpoint: Any, X: Any, metric: str, n: int, options: PassOptions
) -> tuple[np.ndarray, bool]:
    """``(M, N)`` distances from the new checkpoints to the known ones, and whether M was a single row."""
    if metric != "precomputed" and not _is_rows(new_checkpoint):
        # files, folders, checkpoint sets: read like X; one file is one checkpoint
        single = isinstance(new_checkpoint, (str, os.PathLike)) and not os.path.isdir(new_checkpoint)
        return pairwise_with(options, new_checkpoint, X, metric), single
    if hasattr(new_checkpoint, "detach"):
        new_checkpoint = new_checkpoint.detach().cpu().numpy()
    new = np.asarray(new_checkpoint)
    if new.ndim not in (1, 2):
        raise ValueError(
            f"new_checkpoint must be 1-D (one checkpoint) or 2-D (several). (Shape was {new.shape}.)"
        )
    single = new.ndim == 1
    rows = new[None, :] if single else new
    if metric == "precomputed":
        if rows.shape[1] != n:
            raise ValueError(
                f'with metric="precomputed", new_checkpoint holds distances to the {n} known '
                f"checkpoints; got {rows.shape[1]} per row."
            )
        if not np.all(np.isfinite(rows)) or np.any(rows < 0):
            raise ValueError("new_checkpoint distances must be finite and non-negative.")
        return rows.astype(np.float64), single
    return pairwise_with(options, rows, X, metric), single


def _is_rows(value: Any) -> bool:
    """Whether ``value`` holds numbers (an array, a tensor, nested lists), not files or a checkpoint set."""
    if hasattr(value, "detach") or isinstance(value, np.ndarray):
        return True
    if isinstance(value, (list, tuple)):
        return not value or _is_rows(value[0]) or isinstance(value[0], (int, float, np.number))
    return isinstance(value, (int, float, np.number))
