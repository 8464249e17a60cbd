r"""Pairwise sums over one column block, on the CPU.

For rows :math:`x_i` of ``x`` and :math:`y_j` of ``y`` (or of ``x`` itself)
and the block's columns :math:`K`, add to ``out[i, j]``

.. math::

    \mathrm{sqdiff}:\ \sum_{k \in K} (x_{ik} - y_{jk})^2 \qquad
    \mathrm{absdiff}:\ \sum_{k \in K} |x_{ik} - y_{jk}| \qquad
    \mathrm{dot}:\ \sum_{k \in K} x_{ik}\, y_{jk} \qquad
    \mathrm{unitdiff}:\ \sum_{k \in K} (s_i x_{ik} - t_j y_{jk})^2

``unitdiff`` takes row scales ``s, t`` (``1/|x_i|``, ``1/|y_j|`` from an
earlier pass): the squared distance of the unit vectors, ``2 (1 - cos)``,
with nothing to cancel. It is summed in float64 throughout: the scaled values
are no longer exact in float32, and a float32 rounding of each would leave
an error of 1e-7 in the unit vectors, as large as their difference when
``1 - cos`` is 1e-14. Float64 scaling leaves 1e-16 per value; an error of the
norms scales a whole unit vector, and enters ``1 - cos`` only squared.

Differences are taken in the input precision (exact for nearby floats), so
nothing cancels. Sums over ``TILE`` columns run in the input precision, each
vector lane adding a few dozen terms, and are added to float64 accumulators.
bfloat16 blocks arrive as bit patterns and are widened to float32 as they are
loaded (exact), so they are read at half the bytes and summed like float32.

Two layouts of the parallel work: with few pairs, the block's columns are cut
into a fixed number of chunks with private float64 partials (deterministic:
the chunks do not depend on the thread count); with many rows, the rows are
shared out and each ``out[i, j]`` has a single writer.
"""

import numba
import numpy as np
from numba import prange

from wtraj.kernels.contract import PairOp
from wtraj.kernels.numba._common import FASTMATH, TILE, accumulator_zero, host_array, load, n_column_chunks

# Above this many rows (squared: pairs) the column-chunk partials
# (N_CHUNKS x N x M) grow too large, and the rows alone give every core work.
MAX_ROWS_FOR_COLUMN_CHUNKS = 48

# The elementwise terms by their codes. Each compiled kernel holds one as a
# constant, so the branch in _term folds away before LLVM vectorises the loops.
SQDIFF, ABSDIFF = PairOp.SQDIFF.code, PairOp.ABSDIFF.code


@numba.njit(inline="always")
def _term(op, a, b):
    if op == SQDIFF:
        d = a - b
        return d * d
    if op == ABSDIFF:
        return abs(a - b)
    return a * b


# Indices are unsigned so that Numba emits no negative-index wraparound,
# which would keep LLVM from vectorising the loop (measured: 30x slower).
@numba.njit(inline="always", fastmath=FASTMATH)
def _tile_sum(op, zero, x, i, xk0, y, j, yk0, width):
    acc = zero
    for k in range(np.uint64(width)):
        acc += _term(op, load(x[i, xk0 + k]), load(y[j, yk0 + k]))
    return acc


# Register tile of one row of x against four rows of y: each loaded x
# value serves four pairs (5 loads per 4 terms instead of 8).
@numba.njit(inline="always", fastmath=FASTMATH)
def _tile_sums4(op, zero, x, i, xk0, y, j, yk0, width):
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    for k in range(np.uint64(width)):
        xv = load(x[i, xk0 + k])
        yk = yk0 + k
        a0 += _term(op, xv, load(y[j, yk]))
        a1 += _term(op, xv, load(y[j + 1, yk]))
        a2 += _term(op, xv, load(y[j + 2, yk]))
        a3 += _term(op, xv, load(y[j + 3, yk]))
    return a0, a1, a2, a3


# Register tile of two rows of x against four rows of y: 6 loads per 8
# terms (measured 25% less CPU time than one row against four).
@numba.njit(inline="always", fastmath=FASTMATH)
def _tile_sums2x4(op, zero, x, i, xk0, y, j, yk0, width):
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    b0 = zero
    b1 = zero
    b2 = zero
    b3 = zero
    for k in range(np.uint64(width)):
        xv = load(x[i, xk0 + k])
        xw = load(x[i + 1, xk0 + k])
        yk = yk0 + k
        y0 = load(y[j, yk])
        y1 = load(y[j + 1, yk])
        y2 = load(y[j + 2, yk])
        y3 = load(y[j + 3, yk])
        a0 += _term(op, xv, y0)
        a1 += _term(op, xv, y1)
        a2 += _term(op, xv, y2)
        a3 += _term(op, xv, y3)
        b0 += _term(op, xw, y0)
        b1 += _term(op, xw, y1)
        b2 += _term(op, xw, y2)
        b3 += _term(op, xw, y3)
    return a0, a1, a2, a3, b0, b1, b2, b3


@numba.njit(inline="always", fastmath=FASTMATH)
def _row_tile(op, zero, x, i, xk0, y, yk0, width, j_first, acc):
    """Add the sums of row i of x against rows j_first.. of y to acc[i, j]."""
    m = y.shape[0]
    j = j_first
    while j + 4 <= m:
        s0, s1, s2, s3 = _tile_sums4(op, zero, x, i, xk0, y, j, yk0, width)
        acc[i, j] += s0
        acc[i, j + 1] += s1
        acc[i, j + 2] += s2
        acc[i, j + 3] += s3
        j += 4
    while j < m:
        acc[i, j] += _tile_sum(op, zero, x, i, xk0, y, j, yk0, width)
        j += 1


@numba.njit(inline="always", fastmath=FASTMATH)
def _row_pair_tile(op, zero, x, i, xk0, y, yk0, width, j_first, acc):
    """Rows i and i+1 of x against rows j_first.. of y, four at a time."""
    m = y.shape[0]
    j = j_first
    while j + 4 <= m:
        s0, s1, s2, s3, t0, t1, t2, t3 = _tile_sums2x4(op, zero, x, i, xk0, y, j, yk0, width)
        acc[i, j] += s0
        acc[i, j + 1] += s1
        acc[i, j + 2] += s2
        acc[i, j + 3] += s3
        acc[i + 1, j] += t0
        acc[i + 1, j + 1] += t1
        acc[i + 1, j + 2] += t2
        acc[i + 1, j + 3] += t3
        j += 4
    while j < m:
        acc[i, j] += _tile_sum(op, zero, x, i, xk0, y, j, yk0, width)
        acc[i + 1, j] += _tile_sum(op, zero, x, i + 1, xk0, y, j, yk0, width)
        j += 1


# No contraction in the unit kernels: a fused x*s - y*t rounds one product and
# not the other, so identical rows would differ by 1e-17 instead of 0.
UNIT_FASTMATH = FASTMATH - {"contract"}


@numba.njit(inline="always", fastmath=UNIT_FASTMATH)
def _unit_sum(x, i, xk0, si, y, j, yk0, sj, width):
    acc = 0.0
    for k in range(np.uint64(width)):
        d = np.float64(load(x[i, xk0 + k])) * si - np.float64(load(y[j, yk0 + k])) * sj
        acc += d * d
    return acc


@numba.njit(inline="always", fastmath=UNIT_FASTMATH)
def _unit_row(x, i, xk0, x_scale, y, yk0, y_scale, width, j_first, acc):
    """Add row i of x against rows j_first.. of y, unit-scaled, to acc[i, j]."""
    si = x_scale[i]
    for j in range(j_first, y.shape[0]):
        acc[i, j] += _unit_sum(x, i, xk0, si, y, j, yk0, y_scale[j], width)


@numba.njit(parallel=True, fastmath=UNIT_FASTMATH, cache=True, nogil=True)
def _unit_by_columns(x, x_start, x_scale, y, y_start, y_scale, width, symmetric, out):
    n = x.shape[0]
    n_tiles = (width + TILE - 1) // TILE
    n_chunks = n_column_chunks(n_tiles)
    partial = np.zeros((n_chunks, n, y.shape[0]))
    for c in prange(n_chunks):
        for t in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
            k0 = t * TILE
            tile_width = min(TILE, width - k0)
            xk0 = np.uint64(x_start + k0)
            yk0 = np.uint64(y_start + k0)
            for i in range(n):
                j_first = i + 1 if symmetric else 0
                _unit_row(x, i, xk0, x_scale, y, yk0, y_scale, tile_width, j_first, partial[c])
    for c in range(n_chunks):
        out += partial[c]


@numba.njit(parallel=True, fastmath=UNIT_FASTMATH, cache=True, nogil=True)
def _unit_by_rows(x, x_start, x_scale, y, y_start, y_scale, width, symmetric, out):
    n = x.shape[0]
    n_items = (n + 1) // 2 if symmetric else n
    for k0 in range(0, width, TILE):
        tile_width = min(TILE, width - k0)
        xk0 = np.uint64(x_start + k0)
        yk0 = np.uint64(y_start + k0)
        for p in prange(n_items):
            _unit_row(x, p, xk0, x_scale, y, yk0, y_scale, tile_width, p + 1 if symmetric else 0, out)
            q = n - 1 - p
            if symmetric and q != p:
                _unit_row(x, q, xk0, x_scale, y, yk0, y_scale, tile_width, q + 1, out)


def _build(op, zero):
    """Compile the kernels of one elementwise term and one tile-sum precision.

    They close over plain numbers only: Numba's on-disk cache keys a closure
    by its pickled cells, and a compiled function pickles differently in
    every process, which would recompile the kernels each time.
    """

    @numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)
    def by_columns(x, x_start, y, y_start, width, symmetric, out):
        n = x.shape[0]
        n_tiles = (width + TILE - 1) // TILE
        n_chunks = n_column_chunks(n_tiles)
        partial = np.zeros((n_chunks, n, y.shape[0]))
        for c in prange(n_chunks):
            for t in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
                k0 = t * TILE
                tile_width = min(TILE, width - k0)
                xk0 = np.uint64(x_start + k0)
                yk0 = np.uint64(y_start + k0)
                acc = partial[c]
                i = 0
                while i + 2 <= n:
                    j_first = 0
                    if symmetric:
                        # start early enough that the rows from i+1 on come in whole
                        # groups of four: the few pairs below the diagonal this adds
                        # cost less than one-by-one tails (callers read only i < j)
                        j_first = max(0, n - 4 * ((n - i + 2) // 4))
                    _row_pair_tile(op, zero, x, i, xk0, y, yk0, tile_width, j_first, acc)
                    i += 2
                if i < n:
                    _row_tile(op, zero, x, i, xk0, y, yk0, tile_width, i + 1 if symmetric else 0, acc)
        for c in range(n_chunks):
            out += partial[c]

    @numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)
    def by_rows(x, x_start, y, y_start, width, symmetric, out):
        n = x.shape[0]
        # with symmetric pairs, row p shares an item with row n-1-p so that
        # every item has n-1 pairs and the triangle's work is balanced
        n_items = (n + 1) // 2 if symmetric else n
        for k0 in range(0, width, TILE):
            tile_width = min(TILE, width - k0)
            xk0 = np.uint64(x_start + k0)
            yk0 = np.uint64(y_start + k0)
            for p in prange(n_items):
                _row_tile(op, zero, x, p, xk0, y, yk0, tile_width, p + 1 if symmetric else 0, out)
                q = n - 1 - p
                if symmetric and q != p:
                    _row_tile(op, zero, x, q, xk0, y, yk0, tile_width, q + 1, out)

    return by_columns, by_rows


_KERNELS: dict = {}


def _kernels(op, dtype):
    key = (PairOp(op), np.dtype(dtype))
    if key not in _KERNELS:
        _KERNELS[key] = _build(key[0].code, accumulator_zero(key[1]))
    return _KERNELS[key]


def pairwise_block(x, x_start, x_stop, y, y_start, y_stop, op, out, scales=None):
    """Add one column block's pairwise sums to ``out``.

    Parameters
    ----------
    x : (N, *) float32 or float64 array, or bfloat16 bits (``BFLOAT16_BITS``); last axis contiguous
    x_start, x_stop : int
        The block is ``x[:, x_start:x_stop]``.
    y : (M, *) array of the same kinds, or None
        None pairs ``x`` with itself: only the upper triangle ``i < j`` of
        ``out`` is meaningful (entries on and below the diagonal are scratch;
        the diagonal is zero by definition).
    y_start, y_stop : int
        The block of ``y``; same width as x's.
    op : PairOp or its value ("sqdiff", "absdiff", "dot", "unitdiff")
    out : (N, M) float64 array, accumulated in place
    scales : pair of (N,) and (M,) float64 arrays, only for ``"unitdiff"``
        The factors each row of x and of y is multiplied by (with ``y=None``,
        x's twice).
    """
    x = host_array(x)
    symmetric = y is None
    if symmetric:
        y, y_start = x, x_start
    else:
        y = host_array(y)
    few_pairs = x.shape[0] * y.shape[0] <= MAX_ROWS_FOR_COLUMN_CHUNKS**2
    if PairOp(op) is PairOp.UNITDIFF:
        x_scale, y_scale = scales
        launch = _unit_by_columns if few_pairs else _unit_by_rows
        launch(x, x_start, x_scale, y, y_start, y_scale, x_stop - x_start, symmetric, out)
        return
    by_columns, by_rows = _kernels(op, x.dtype)
    launch = by_columns if few_pairs else by_rows
    launch(x, x_start, y, y_start, x_stop - x_start, symmetric, out)
