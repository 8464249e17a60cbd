"""Float64 reference for ``kernels/*/pairwise.py``: pairwise sums over one column block."""

import numpy as np

from wtraj.kernels.contract import ALL_PATH_SUMS, PairOp
from wtraj.kernels.reference._widen import float64_columns
from wtraj.kernels.reference.steps import steps_block


def pairwise_block(x, x_start, x_stop, y, y_start, y_stop, op, out, scales=None, steps=None,
                   path_sums=ALL_PATH_SUMS):
    """Add one column block's pairwise sums to ``out``, in float64 throughout.

    Same contract as :func:`wtraj.kernels.numba.pairwise.pairwise_block`;
    with ``y=None`` the full matrix is written, of which callers use ``i < j``.
    ``steps`` gets x's path sums from :func:`wtraj.kernels.reference.steps.steps_block`.
    """
    op = PairOp(op)
    xb = float64_columns(x, x_start, x_stop)
    yb = xb if y is None else float64_columns(y, y_start, y_stop)
    if op is PairOp.UNITDIFF:
        # the rows scaled to unit norm: differences of unit vectors, no cancellation
        xb = xb * np.asarray(scales[0])[:, None]
        yb = yb * np.asarray(scales[1])[:, None]
        op = PairOp.SQDIFF
    for i, row in enumerate(xb):
        if op is PairOp.SQDIFF:
            out[i] += ((yb - row) ** 2).sum(axis=1)
        elif op is PairOp.ABSDIFF:
            out[i] += np.abs(yb - row).sum(axis=1)
        else:
            out[i] += (yb * row).sum(axis=1)
    if steps is not None:
        steps_block(x, x_start, x_stop, steps, path_sums)
