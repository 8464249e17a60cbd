"""Float64 reference for ``kernels/*/steps.py``: sums along the path over one column block."""

import numpy as np

from wtraj.kernels.contract import ALL_PATH_SUMS, PathSum
from wtraj.kernels.reference._widen import float64_columns


def steps_block(x, start, stop, out, sums=ALL_PATH_SUMS):
    """Add one column block's path sums to ``out`` (N_PATH_SUMS, N), in float64 throughout.

    All the rows, whatever ``sums`` asks for: the reference is kept obviously right, not fast.

    Rows of ``out`` (:class:`wtraj.kernels.contract.PathSum`): squared norms, squared steps
    ``|x[i+1]-x[i]|^2``, squared bends ``|(x[i+2]-x[i+1]) - (x[i+1]-x[i])|^2``,
    squared skips ``|x[i+2]-x[i]|^2``, dots of consecutive steps.
    """
    xb = float64_columns(x, start, stop)
    steps = np.diff(xb, axis=0)
    n = xb.shape[0]
    out[PathSum.NORM2] += (xb**2).sum(axis=1)
    out[PathSum.STEP2, : n - 1] += (steps**2).sum(axis=1)
    out[PathSum.BEND2, : n - 2] += ((steps[1:] - steps[:-1]) ** 2).sum(axis=1)
    out[PathSum.SKIP2, : n - 2] += ((xb[2:] - xb[:-2]) ** 2).sum(axis=1)
    out[PathSum.STEP_DOT, : n - 2] += (steps[:-1] * steps[1:]).sum(axis=1)
