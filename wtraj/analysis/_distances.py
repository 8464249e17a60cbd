"""Input handling for trajectory analysis: data or a precomputed distance matrix.

Every analysis works from one ``(N, N)`` float64 distance matrix. Data are
turned into it by :func:`wtraj.pairwise`, which streams the checkpoints block
by block, so no ``(N, D)`` float64 copy of the data is ever made. A
precomputed matrix (``metric="precomputed"``) is checked here once.

Identical checkpoints (distance exactly zero, for example the shared
initialisation of two runs that was loaded twice) are collapsed into one node
before any algorithm runs; :class:`Nodes` maps results back to every row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

# precomputed matrices are accepted as symmetric when |D - D.T| stays below this
# fraction of the largest distance (float32 kernels leave ~1e-7 of asymmetry)
SYMMETRY_RTOL = 1e-6
# two checkpoints count as identical when their distance is at most this
# fraction of the largest distance; exact arithmetic on equal rows gives 0
DUPLICATE_RTOL = 1e-12
# rows and columns of D checked at a time
CHECK_TILE = 512


@dataclass(frozen=True)
class PassOptions:
    """How the distances of data (not of a precomputed matrix) are computed: see :func:`wtraj.pairwise`."""

    backend: str | None = None
    memory_budget: int | str | None = None
    progress: bool | None = None
    # a torch.distributed process group that splits the pass (see wtraj.pairwise)
    group: Any = None


def distance_matrix(
    X: Any, metric: str = "euclidean", *, name: str = "X", options: PassOptions = PassOptions()
) -> np.ndarray:
    """The ``(N, N)`` float64 distance matrix of ``X``.

    Parameters
    ----------
    X : array_like, path, checkpoint set or ndarray of shape (N, N)
        Checkpoints in any form :func:`wtraj.pairwise` accepts, or a distance
        matrix when ``metric="precomputed"``.
    metric : str
        A metric of :func:`wtraj.pairwise` or ``"precomputed"``.
    name : str
        Argument name used in error messages.
    options : PassOptions
        Backend, memory budget and progress bar of the pass over the data.

    Returns
    -------
    ndarray, shape (N, N), float64
        Symmetric, finite, non-negative, zero on the diagonal.
    """
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string; got {type(metric).__name__}.")
    if metric == "precomputed":
        return check_distance_matrix(X, name=name)
    return _symmetric(pairwise_with(options, X, metric=metric))


def pairwise_with(options: PassOptions, X: Any, Y: Any = None, metric: str = "euclidean") -> np.ndarray:
    """:func:`wtraj.pairwise` of ``X`` (and ``Y``) as float64, in the pass ``options`` describe."""
    from wtraj.distances import pairwise

    distances = pairwise(
        X, Y, metric=metric, backend=options.backend,
        memory_budget=options.memory_budget, progress=options.progress, group=options.group,
    )  # fmt: skip
    return np.asarray(distances, dtype=np.float64)


def _symmetric(D: np.ndarray) -> np.ndarray:
    """``D`` made exactly symmetric with a zero diagonal."""
    # the kernels' tiles may differ in the last bits between (i, j) and (j, i)
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, 0.0)
    return D


def distances_and_norms(
    X: Any, metric: str, options: PassOptions, norms: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The distance matrix of ``X`` and, where they can be had, the checkpoints' norms.

    Euclidean distances of data come with the norms from the same pass
    (:func:`wtraj.trajectory_stats`); a precomputed matrix comes with the
    ``norms`` the caller gives, or none.
    """
    if metric == "precomputed":
        D = check_distance_matrix(X)
        return D, None if norms is None else check_norms(norms, D.shape[0])
    if norms is not None:
        raise ValueError('norms are given only with metric="precomputed"; data bring their own.')
    if metric != "euclidean":
        return distance_matrix(X, metric, options=options), None
    from wtraj.stats import trajectory_stats

    with warnings.catch_warnings():
        # the pass also finds turning angles; repeated checkpoints leave some undefined, which is no news here
        warnings.filterwarnings("ignore", message=".*turning angle", category=RuntimeWarning)
        stats = trajectory_stats(
            X, backend=options.backend, memory_budget=options.memory_budget, progress=options.progress,
            group=options.group,
        )
    return _symmetric(stats.distances), np.asarray(stats.norms, dtype=np.float64)


def check_norms(norms: Any, n: int) -> np.ndarray:
    """``norms`` as a finite, non-negative float64 array of shape ``(n,)``; ValueError otherwise."""
    norms = np.asarray(norms)
    if norms.shape != (n,) or not np.issubdtype(norms.dtype, np.number):
        raise ValueError(
            f"norms must hold one number per checkpoint, shape ({n},); got dtype {norms.dtype}, "
            f"shape {norms.shape}."
        )
    norms = norms.astype(np.float64)
    if not np.all(np.isfinite(norms)) or np.any(norms < 0):
        raise ValueError("norms must be finite and non-negative.")
    return norms


def prepare_nodes(
    X: Any, metric: str, minimum: int, question: str, options: PassOptions, norms: Any = None
) -> Nodes:
    """The prelude of every analysis: distances (and norms), identical checkpoints collapsed, enough of them.

    Raises
    ------
    ValueError
        Fewer than ``minimum`` distinct checkpoints, or a bad distance matrix.
    """
    nodes = distinct_nodes(*distances_and_norms(X, metric, options, norms))
    require_nodes(nodes, minimum, question)
    return nodes


def check_int(
    value: Any, name: str, minimum: int, maximum: int | None = None, maximum_is: str = ""
) -> int:
    """``value`` as an int in ``[minimum, maximum]``: TypeError for a non-int, ValueError outside.

    ``maximum_is`` says what the maximum stands for in the message ("the number of checkpoints").
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}.")
    if maximum is None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}.")
    if maximum is not None and not minimum <= value <= maximum:
        upper = f"{maximum_is} ({maximum})" if maximum_is else str(maximum)
        raise ValueError(f"{name} must lie between {minimum} and {upper}; got {value}.")
    return int(value)


def check_labels(labels: Any, n: int, what: str = "checkpoint") -> np.ndarray:
    """``labels`` as an int array of shape ``(n,)``, one run per {what}; ValueError otherwise."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an int array of shape ({n},), one run per {what}; "
            f"got dtype {labels.dtype}, shape {labels.shape}."
        )
    return labels


def check_positive(value: Any, name: str) -> float:
    """``value`` as a positive float: TypeError for a non-number, ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}.")
    if not value > 0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a positive number; got {value!r}.")
    return float(value)


def check_distance_matrix(D: Any, *, name: str = "X") -> np.ndarray:
    """Validate a precomputed distance matrix and return it as float64.

    Raises
    ------
    TypeError
        ``D`` is not a numeric array.
    ValueError
        ``D`` is not 2-D and square, has NaN or infinite or negative entries,
        a non-zero diagonal, or is not symmetric.
    """
    if hasattr(D, "detach"):
        D = D.detach().cpu().numpy()
    if not isinstance(D, np.ndarray):
        raise TypeError(
            f'{name} with metric="precomputed" must be a NumPy array of distances; got {type(D).__name__}.'
        )
    if not (np.issubdtype(D.dtype, np.floating) or np.issubdtype(D.dtype, np.integer)):
        raise TypeError(f'{name} with metric="precomputed" must be numeric; got dtype {D.dtype}.')
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(
            f'{name} with metric="precomputed" must be a square (N, N) distance matrix. '
            f"(Shape was {D.shape}.)"
        )
    D = np.asarray(D, dtype=np.float64)
    # checked a tile at a time: whole-matrix temporaries (D - D.T above all,
    # read across rows) cost as much memory as D and most of the time at N=10,000
    scale = 0.0
    for start in range(0, D.shape[0], CHECK_TILE):
        rows = D[start : start + CHECK_TILE]
        bad = ~np.isfinite(rows)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"{name} has a non-finite distance {rows[i, j]} at [{start + i}, {j}].")
        if (rows < 0).any():
            i, j = np.argwhere(rows < 0)[0]
            raise ValueError(f"{name} has a negative distance {rows[i, j]} at [{start + i}, {j}].")
        scale = max(scale, float(rows.max()))
    diagonal = np.abs(np.diagonal(D))
    if (diagonal > SYMMETRY_RTOL * scale).any():
        i = int(np.argmax(diagonal))
        raise ValueError(
            f"{name} must have zeros on its diagonal (a distance matrix); [{i}, {i}] is {D[i, i]}."
        )
    for top in range(0, D.shape[0], CHECK_TILE):
        for left in range(top, D.shape[0], CHECK_TILE):
            tile = D[top : top + CHECK_TILE, left : left + CHECK_TILE]
            mirror = D[left : left + CHECK_TILE, top : top + CHECK_TILE].T
            asymmetry = np.abs(tile - mirror)
            if (asymmetry > SYMMETRY_RTOL * scale).any():
                i, j = np.unravel_index(int(np.argmax(asymmetry)), tile.shape)
                i, j = top + i, left + j
                raise ValueError(
                    f"{name} is not symmetric: [{i}, {j}] = {D[i, j]} but [{j}, {i}] = {D[j, i]}."
                )
    return D


@dataclass(frozen=True)
class Nodes:
    """Distinct checkpoints of a distance matrix.

    Attributes
    ----------
    D : ndarray, shape (M, M), float64
        Distances between the distinct checkpoints (M <= N).
    representative : ndarray, shape (M,), int64
        For each node, the first row of ``X`` that holds it.
    node_of : ndarray, shape (N,), int64
        For each row of ``X``, its node.
    norms : ndarray, shape (M,), float64, or None
        Euclidean norm of each node's weights, where known (see
        :func:`distances_and_norms`).
    """

    D: np.ndarray
    representative: np.ndarray
    node_of: np.ndarray
    norms: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.node_of.shape[0])

    def rows_of(self, node_order: np.ndarray) -> np.ndarray:
        """Rows of ``X`` for nodes in ``node_order``, duplicates next to each other by row index."""
        by_node = np.argsort(self.node_of, kind="stable")
        starts = np.searchsorted(self.node_of[by_node], node_order, side="left")
        stops = np.searchsorted(self.node_of[by_node], node_order, side="right")
        return np.concatenate([by_node[a:b] for a, b in zip(starts, stops)]).astype(np.int64)


def distinct_nodes(D: np.ndarray, norms: np.ndarray | None = None) -> Nodes:
    """Collapse identical checkpoints (zero distance) of ``D`` into single nodes, with their ``norms``."""
    n = D.shape[0]
    scale = float(D.max()) if n else 0.0
    tolerance = DUPLICATE_RTOL * scale
    node_of = np.full(n, -1, dtype=np.int64)
    representative = []
    for i in range(n):
        if node_of[i] >= 0:
            continue
        same = np.flatnonzero(D[i, i:] <= tolerance) + i
        same = same[node_of[same] < 0]
        node_of[same] = len(representative)
        representative.append(i)
    representative = np.asarray(representative, dtype=np.int64)
    if len(representative) == n:
        # no duplicates: share the matrix instead of copying N x N floats
        return Nodes(D, representative, node_of, norms)
    node_norms = None if norms is None else norms[representative]
    return Nodes(D[np.ix_(representative, representative)], representative, node_of, node_norms)


def require_nodes(nodes: Nodes, minimum: int, question: str) -> None:
    """Raise a ValueError when fewer than ``minimum`` distinct checkpoints remain."""
    m = nodes.D.shape[0]
    if m < minimum:
        raise ValueError(
            f"{question} needs at least {minimum} distinct checkpoints; got {nodes.n_rows} "
            f"checkpoint(s), of which {m} distinct."
        )
