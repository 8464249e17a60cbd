r"""Per-checkpoint sums along the path over one column block, on the CPU.

For consecutive rows :math:`x_i, x_{i+1}, x_{i+2}` with steps
:math:`u_i = x_{i+1} - x_i`, add to the rows of ``out`` (:class:`~wtraj.kernels.contract.PathSum`)

.. math::

    \mathrm{NORM2}_i \mathrel{+}= \sum_k x_{ik}^2 \qquad
    \mathrm{STEP2}_i \mathrel{+}= \sum_k u_{ik}^2 \qquad
    \mathrm{BEND2}_i \mathrel{+}= \sum_k (u_{i+1,k} - u_{ik})^2 \qquad
    \mathrm{SKIP2}_i \mathrel{+}= \sum_k (x_{i+2,k} - x_{ik})^2 \qquad
    \mathrm{STEP\_DOT}_i \mathrel{+}= \sum_k u_{ik} u_{i+1,k}

Everything here is O(N D), so it is all done in float64: each value is
widened before the subtraction (exact for float32, float16 and bfloat16
input; bfloat16 blocks arrive as bit patterns, widened as they are loaded),
and float32 products are exact in float64. The turning angle between
:math:`u = u_i` and :math:`v = u_{i+1}` comes from the three sides
:math:`|u|, |v|, |v - u|` of their triangle (Kahan's formula, in
``wtraj/path.py``): the bend :math:`v - u`, a second difference, is summed
directly, so a small angle does not have to be recovered from
:math:`|u|^2|v|^2 - (u \cdot v)^2`, which cancels.
"""

import numba
import numpy as np
from numba import prange

from wtraj.kernels.contract import N_PATH_SUMS, PathSum
from wtraj.kernels.numba._common import FASTMATH, TILE, host_array, load, n_column_chunks


@numba.njit(fastmath=FASTMATH)
def _row_sums(x, i, k0, k1, partial):
    n = x.shape[0]
    # the norm in a loop of its own, the same for every row: identical rows get
    # bitwise identical norms wherever they stand (cosine's row scales rely on it)
    norm2 = 0.0
    for k in range(np.uint64(k0), np.uint64(k1)):
        x0 = np.float64(load(x[i, k]))
        norm2 += x0 * x0
    step2 = 0.0
    bend2 = 0.0
    skip2 = 0.0
    step_dot = 0.0
    if i + 2 < n:
        for k in range(np.uint64(k0), np.uint64(k1)):
            x0 = np.float64(load(x[i, k]))
            x1 = np.float64(load(x[i + 1, k]))
            x2 = np.float64(load(x[i + 2, k]))
            u = x1 - x0
            v = x2 - x1
            b = v - u
            w = x2 - x0
            step2 += u * u
            bend2 += b * b
            skip2 += w * w
            step_dot += u * v
    elif i + 1 < n:
        for k in range(np.uint64(k0), np.uint64(k1)):
            u = np.float64(load(x[i + 1, k])) - np.float64(load(x[i, k]))
            step2 += u * u
    partial[PathSum.NORM2, i] += norm2
    partial[PathSum.STEP2, i] += step2
    partial[PathSum.BEND2, i] += bend2
    partial[PathSum.SKIP2, i] += skip2
    partial[PathSum.STEP_DOT, i] += step_dot


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)
def _steps_by_columns(x, start, stop, out):
    n = x.shape[0]
    n_tiles = (stop - start + TILE - 1) // TILE
    n_chunks = n_column_chunks(n_tiles)
    partial = np.zeros((n_chunks, N_PATH_SUMS, n))
    for c in prange(n_chunks):
        for t in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
            k0 = start + t * TILE
            k1 = min(k0 + TILE, stop)
            for i in range(n):
                _row_sums(x, i, k0, k1, partial[c])
    for c in range(n_chunks):
        for r in range(N_PATH_SUMS):
            for i in range(n):
                out[r, i] += partial[c, r, i]


def steps_block(x, start, stop, out):
    """Add one column block's path sums to ``out``.

    Parameters
    ----------
    x : (N, *) float32 or float64 array, or bfloat16 bits (``BFLOAT16_BITS``); last axis contiguous
    start, stop : int
        The block is ``x[:, start:stop]``.
    out : (N_PATH_SUMS, N) float64 array, accumulated in place
        Rows as in :class:`wtraj.kernels.contract.PathSum`: squared norms, squared steps, squared bends
        ``|x[i+2] - 2 x[i+1] + x[i]|^2``, squared skips ``|x[i+2] - x[i]|^2``,
        dots of consecutive steps (unused tails stay zero).
    """
    _steps_by_columns(host_array(x), start, stop, out)
