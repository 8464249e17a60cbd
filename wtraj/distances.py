"""``pairwise``: distances between checkpoints, exact by construction."""

from __future__ import annotations

from typing import Any

import numpy as np

from wtraj._engine import accumulate, prepare
from wtraj.metrics import metric_info


def pairwise(
    X: Any,
    Y: Any = None,
    metric: str = "euclidean",
    *,
    backend: str | None = None,
    check_finite: bool = True,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Distances between all pairs of checkpoints.

    Parameters
    ----------
    X : (N, D) array, torch tensor, list of N 1-D arrays, path(s) or checkpoint set
        One flattened checkpoint per row. Read in column blocks: D may exceed memory.
    Y : (M, D) like X, optional
        Pair every row of X with every row of Y; by default X with itself.
    metric : {"euclidean", "sqeuclidean", "cosine", "inner", "cityblock"}
        ``cosine`` is ``1 - cos``, accurate also near 0; ``inner`` is ``a . b``.
    backend : {"auto", "numba", "triton", "reference"}, optional
        Default: ``WTRAJ_BACKEND`` or ``"auto"`` (CUDA tensors to Triton, else Numba).
    check_finite : bool
        Raise ``ValueError`` naming the row and column of the first NaN/Inf.
    memory_budget : int or str, optional
        Bytes the block buffers of a streamed input may use (e.g. ``"1GiB"``).
    progress : bool, optional
        Progress bar; by default only on a terminal for passes of 2 GB or more.

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
    in float64. Expected error per metric: ``wtraj.METRICS[name].accuracy``
    (e.g. euclidean, float32 input: relative error below 1e-6 of the float64
    distance of the same values, for any separation).
    """
    info = metric_info(metric)
    x_source, y_source, kernels = prepare(X, Y, backend)
    symmetric = y_source is None
    # The symmetric kernels fill only i < j. The diagonal of "inner" is the
    # squared norm; and a lone checkpoint has no pair whose sum would reveal a
    # NaN, so its norm is summed to check it.
    self_dot = symmetric and info.pair_op == "dot"
    norms = info.needs_norms or self_dot or (symmetric and x_source.n_checkpoints == 1)
    sums = accumulate(
        x_source, kernels, y_source=y_source, pair_op=info.pair_op,
        steps=norms, y_steps=norms and not symmetric,
        memory_budget=memory_budget, progress=progress, check_finite=check_finite,
    )
    pairs = sums.pairs
    x_norm2 = sums.steps[0] if norms else None
    y_norm2 = None
    if symmetric:
        pairs = np.triu(pairs, 1)
        pairs = pairs + pairs.T
        y_norm2 = x_norm2
    elif norms:
        y_norm2 = sums.y_steps[0]
    distances = info.finalize(pairs, x_norm2, y_norm2)
    if symmetric:
        np.fill_diagonal(distances, x_norm2 if self_dot else 0.0)
    return distances
