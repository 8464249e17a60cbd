"""``pairwise``: distances between checkpoints, exact by construction."""

from __future__ import annotations

from typing import Any

import numpy as np

from wtraj._engine import prepare
from wtraj._pair_tiles import tiled_pair_sums
from wtraj._pass import Pass
from wtraj._ranges import mirror_upper_triangle
from wtraj.kernels.contract import PairOp, PathSum
from wtraj.metrics import metric_info

SPLITS = ("columns", "pairs")


def pairwise(
    X: Any,
    Y: Any = None,
    metric: str = "euclidean",
    *,
    backend: str | None = None,
    check_finite: bool = True,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
    split: str = "columns",
) -> np.ndarray:
    """Distances between all pairs of checkpoints.

    Parameters
    ----------
    X : (N, D) array, torch tensor, list of N 1-D arrays, path(s) or checkpoint set
        One flattened checkpoint per row. Read in column blocks: D may exceed memory.
        Tensors that require grad are read without it (detached).
    Y : (M, D) like X, optional
        Pair every row of X with every row of Y; by default X with itself.
    metric : {"euclidean", "sqeuclidean", "cosine", "inner", "cityblock"}
        ``cosine`` is ``1 - cos``, accurate also near 0; ``inner`` is ``a . b``.
    backend : {"auto", "numba", "triton", "reference"}, optional
        Default: ``WTRAJ_BACKEND`` or ``"auto"`` (CUDA tensors to Triton, else Numba).
    check_finite : bool
        Raise ``ValueError`` naming the row and column of the first NaN/Inf.
    memory_budget : int or str, optional
        Bytes the block buffers of the pass may use (e.g. ``"1GiB"``); an
        in-memory array is read in place and needs none.
    progress : bool, optional
        Progress bar; by default only on a terminal for passes of 1 GiB or more.
    group : torch.distributed ProcessGroup, optional
        Split the pass across the group's processes (each reads its own
        columns; the float64 sums are all-reduced). Every rank passes the
        same input and returns the same matrix, equal to one process's to
        ~1e-15 relative (see README, "Scale-out").
    split : {"columns", "pairs"}
        How a group shares the work. ``"columns"``: each rank reads its
        columns of every checkpoint (big models). ``"pairs"``: each rank
        computes tiles of the (N, M) matrix from the rows they need (many
        checkpoints: the pairs are the work), after a column-split pass for
        the norms and the finite check. Without a group, one pass either way.

    Returns
    -------
    (N, M) float64 ndarray
        With Y omitted, symmetric with an exactly zero diagonal.

    Notes
    -----
    Differences are taken elementwise in the input precision (float16 and
    bfloat16 are widened to float32 first), never through
    ``|a|^2 + |b|^2 - 2 a.b``, which cancels for nearby checkpoints. Sums run
    over tiles of 1024 columns in float32 (float64 for float64 input) and then
    in float64. ``cosine`` takes two passes: the norms, then
    ``|a/|a| - b/|b||^2 / 2`` in float64, accurate whether the rows turned
    or only changed length. Float32 sums that may have overflowed (values
    near 1e19) or underflowed (differences below ~1e-19) are computed again
    in float64. Expected error per metric: ``wtraj.METRICS[name].accuracy``
    (e.g. euclidean, float32 input: relative error below 2e-7 of the float64
    distance of the same values, for any separation).
    """
    info = metric_info(metric)
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: choose one of {', '.join(map(repr, SPLITS))}.")
    x_source, y_source, kernels, ranks = prepare(X, Y, backend, group)
    symmetric = y_source is None
    passes = dict(memory_budget=memory_budget, progress=progress)
    run = Pass(x_source, kernels, y_source=y_source, check_finite=check_finite, group=ranks, **passes)
    # The symmetric kernels fill only i < j. The diagonal of "inner" is the
    # squared norm; and a lone checkpoint has no pair whose sum would reveal a
    # NaN, so its norm is summed to check it.
    self_dot = symmetric and info.pair_op is PairOp.DOT
    norms = info.needs_norms or self_dot or (symmetric and x_source.n_checkpoints == 1)
    by_tiles = split == "pairs" and ranks is not None
    if info.needs_norms or by_tiles:
        # a first pass for the norms, which scale the rows of the second; before
        # pair tiles, it also checks every row for NaN and Inf (split by columns)
        norms_only = frozenset({PathSum.NORM2})
        norm_sums = run.run(steps=norms_only, y_steps=frozenset() if symmetric else norms_only)
        x_norm2 = norm_sums.steps[PathSum.NORM2]
        y_norm2 = x_norm2 if symmetric else norm_sums.y_steps[PathSum.NORM2]
        pair_scales = (_inverse_norms(x_norm2), _inverse_norms(y_norm2)) if info.needs_norms else None
        if by_tiles:
            pairs = tiled_pair_sums(x_source, y_source, kernels, info.pair_op, pair_scales, ranks, **passes)
        else:
            pairs = run.run(pair_op=info.pair_op, pair_scales=pair_scales).pairs
    else:
        sums = run.run(pair_op=info.pair_op, steps=norms, y_steps=norms and not symmetric)
        pairs = sums.pairs
        x_norm2 = sums.steps[PathSum.NORM2] if norms else None
        y_norm2 = x_norm2 if symmetric else (sums.y_steps[PathSum.NORM2] if norms else None)
    # every step below works in place: the matrix may be most of memory
    if symmetric:
        mirror_upper_triangle(pairs)
    distances = info.finalize(pairs, x_norm2, y_norm2)
    if symmetric:
        np.fill_diagonal(distances, x_norm2 if self_dot else 0.0)
    return distances


def _inverse_norms(norm2: np.ndarray) -> np.ndarray:
    """1 / |x| per row, and 0 for an all-zero row (whose cosine is undefined and becomes NaN)."""
    with np.errstate(divide="ignore"):
        return np.where(norm2 > 0, 1.0 / np.sqrt(norm2), 0.0)
