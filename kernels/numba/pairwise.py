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
loaded (exact), two columns per 32-bit load, so they are read at half the
bytes and summed like float32 (each lane adding the same number of terms).

The rows are taken four at a time: each column loaded from four rows of x
and four of y serves 16 pairs held in registers (the 6 pairs among four rows
of x itself on the diagonal), so a symmetric pass sums exactly the pairs
``i < j``.

Two layouts of the parallel work: with few pairs, the block's columns are cut
into a fixed number of chunks with private float64 partials (deterministic:
the chunks do not depend on the thread count; each tile is swept a piece of
``SWEEP_BYTES`` per row at a time, every group of rows on one piece before the
next); with many rows, the groups of rows are shared out and each
``out[i, j]`` has a single writer. The first
layout can also add x's path sums (``steps.py``) tile by tile, so that a pass
wanting both reads the block from memory once.
"""

import numba
import numpy as np
from numba import prange

from wtraj.kernels.contract import ALL_PATH_SUMS, N_PATH_SUMS, PairOp
from wtraj.kernels.numba._common import (
    FASTMATH,
    TILE,
    accumulator_zero,
    add_chunks,
    host_array,
    load,
    load_two,
    n_column_chunks,
)
from wtraj.kernels.numba.steps import path_mask, steps_block, tile_sums

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


# Bytes of each row that all groups of rows sweep, in the few-rows layout, before
# any moves on (256 float32 columns, 512 bfloat16): every row of the block is
# read a little at a time, side by side, so the hardware prefetchers stream all
# of them at once, and the piece stays in L1 for the other groups. A group
# sweeping a whole tile waited on its 4 new rows alone; shorter pieces pay
# for reducing the register tiles' sums once per piece. The fastest width
# measured (bench/RESULTS.md, "Short sweeps").
SWEEP_BYTES = 1024

# Rows of x (and of y) that one register tile holds: a 4 x 4 block of pairs
# is 16 vector accumulators and 8 loads per 16 terms, within AVX-512VL's 32
# vector registers; the pairs of 4 rows among themselves are a triangle of 6.
GROUP = 4


# Indices are unsigned so that Numba emits no negative-index wraparound,
# which would keep LLVM from vectorising the loop (measured: 30x slower).
@numba.njit(inline="always", fastmath=FASTMATH)
def _block_sums(op, zero, x, i0, i1, i2, i3, xk0, y, j0, j1, j2, j3, yk0, width):
    """Tile sums of rows i0..i3 of x against rows j0..j3 of y: 16 sums, 8 loads per column."""
    s00 = s01 = s02 = s03 = zero
    s10 = s11 = s12 = s13 = zero
    s20 = s21 = s22 = s23 = zero
    s30 = s31 = s32 = s33 = zero
    first = np.uint64(0)
    if x.itemsize == 2:
        # bfloat16 bits: widening costs an instruction per value, fewer two at a time (load_two)
        for h in range(np.uint64(width // 2)):
            xk = xk0 + h + h
            yk = yk0 + h + h
            a0, c0 = load_two(x, i0, xk)
            a1, c1 = load_two(x, i1, xk)
            a2, c2 = load_two(x, i2, xk)
            a3, c3 = load_two(x, i3, xk)
            b0, e0 = load_two(y, j0, yk)
            b1, e1 = load_two(y, j1, yk)
            b2, e2 = load_two(y, j2, yk)
            b3, e3 = load_two(y, j3, yk)
            s00 += _term(op, a0, b0) + _term(op, c0, e0)
            s01 += _term(op, a0, b1) + _term(op, c0, e1)
            s02 += _term(op, a0, b2) + _term(op, c0, e2)
            s03 += _term(op, a0, b3) + _term(op, c0, e3)
            s10 += _term(op, a1, b0) + _term(op, c1, e0)
            s11 += _term(op, a1, b1) + _term(op, c1, e1)
            s12 += _term(op, a1, b2) + _term(op, c1, e2)
            s13 += _term(op, a1, b3) + _term(op, c1, e3)
            s20 += _term(op, a2, b0) + _term(op, c2, e0)
            s21 += _term(op, a2, b1) + _term(op, c2, e1)
            s22 += _term(op, a2, b2) + _term(op, c2, e2)
            s23 += _term(op, a2, b3) + _term(op, c2, e3)
            s30 += _term(op, a3, b0) + _term(op, c3, e0)
            s31 += _term(op, a3, b1) + _term(op, c3, e1)
            s32 += _term(op, a3, b2) + _term(op, c3, e2)
            s33 += _term(op, a3, b3) + _term(op, c3, e3)
        first = np.uint64(width - width % 2)
    # every column of float input; the odd last column of bfloat16 bits
    for k in range(first, np.uint64(width)):
        xk = xk0 + k
        yk = yk0 + k
        a0 = load(x[i0, xk])
        a1 = load(x[i1, xk])
        a2 = load(x[i2, xk])
        a3 = load(x[i3, xk])
        b0 = load(y[j0, yk])
        b1 = load(y[j1, yk])
        b2 = load(y[j2, yk])
        b3 = load(y[j3, yk])
        s00 += _term(op, a0, b0)
        s01 += _term(op, a0, b1)
        s02 += _term(op, a0, b2)
        s03 += _term(op, a0, b3)
        s10 += _term(op, a1, b0)
        s11 += _term(op, a1, b1)
        s12 += _term(op, a1, b2)
        s13 += _term(op, a1, b3)
        s20 += _term(op, a2, b0)
        s21 += _term(op, a2, b1)
        s22 += _term(op, a2, b2)
        s23 += _term(op, a2, b3)
        s30 += _term(op, a3, b0)
        s31 += _term(op, a3, b1)
        s32 += _term(op, a3, b2)
        s33 += _term(op, a3, b3)
    return (s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)


@numba.njit(inline="always", fastmath=FASTMATH)
def _triangle_sums(op, zero, x, i0, i1, i2, i3, xk0, width):
    """Tile sums of the 6 pairs among rows i0..i3 of x (4 loads per column)."""
    s01 = s02 = s03 = s12 = s13 = s23 = zero
    first = np.uint64(0)
    if x.itemsize == 2:
        # bfloat16 bits two columns at a time, as in _block_sums
        for h in range(np.uint64(width // 2)):
            xk = xk0 + h + h
            a0, c0 = load_two(x, i0, xk)
            a1, c1 = load_two(x, i1, xk)
            a2, c2 = load_two(x, i2, xk)
            a3, c3 = load_two(x, i3, xk)
            s01 += _term(op, a0, a1) + _term(op, c0, c1)
            s02 += _term(op, a0, a2) + _term(op, c0, c2)
            s03 += _term(op, a0, a3) + _term(op, c0, c3)
            s12 += _term(op, a1, a2) + _term(op, c1, c2)
            s13 += _term(op, a1, a3) + _term(op, c1, c3)
            s23 += _term(op, a2, a3) + _term(op, c2, c3)
        first = np.uint64(width - width % 2)
    for k in range(first, np.uint64(width)):
        xk = xk0 + k
        a0 = load(x[i0, xk])
        a1 = load(x[i1, xk])
        a2 = load(x[i2, xk])
        a3 = load(x[i3, xk])
        s01 += _term(op, a0, a1)
        s02 += _term(op, a0, a2)
        s03 += _term(op, a0, a3)
        s12 += _term(op, a1, a2)
        s13 += _term(op, a1, a3)
        s23 += _term(op, a2, a3)
    return s01, s02, s03, s12, s13, s23


@numba.njit(inline="always")
def _add(acc, i, j, n, m, value):
    # rows past the end were clamped to the last row: their sums are dropped
    if i < n and j < m:
        acc[i, j] += value


@numba.njit(inline="always", fastmath=FASTMATH)
def _group_tile(op, zero, x, i, xk0, y, yk0, width, symmetric, acc):
    """Add the tile sums of rows i..i+3 of x to acc: their triangle (with y=x), then 4 x 4 blocks.

    Symmetric: against the rows of later groups only (acc[i, j] for i < j);
    otherwise against every row of y. Rows past the end are clamped to the
    last row, so every block is a full register tile.
    """
    n = x.shape[0]
    m = y.shape[0]
    i0 = min(i, n - 1)
    i1 = min(i + 1, n - 1)
    i2 = min(i + 2, n - 1)
    i3 = min(i + 3, n - 1)
    j = 0
    if symmetric:
        t = _triangle_sums(op, zero, x, i0, i1, i2, i3, xk0, width)
        _add(acc, i, i + 1, n, n, t[0])
        _add(acc, i, i + 2, n, n, t[1])
        _add(acc, i, i + 3, n, n, t[2])
        _add(acc, i + 1, i + 2, n, n, t[3])
        _add(acc, i + 1, i + 3, n, n, t[4])
        _add(acc, i + 2, i + 3, n, n, t[5])
        j = i + GROUP
    while j < m:
        s = _block_sums(op, zero, x, i0, i1, i2, i3, xk0, y, min(j, m - 1), min(j + 1, m - 1),
                        min(j + 2, m - 1), min(j + 3, m - 1), yk0, width)
        for p in range(GROUP):
            for q in range(GROUP):
                _add(acc, i + p, j + q, n, m, s[GROUP * p + q])
        j += GROUP


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
    add_chunks(out, partial)


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


def _build(op, zero, steps_mask):
    """Compile the kernels of one elementwise term and one tile-sum precision.

    With a nonzero ``steps_mask`` (:func:`~wtraj.kernels.numba.steps.path_mask`),
    ``by_columns`` also adds those path sums of x, tile by tile.

    They close over plain numbers only: Numba's on-disk cache keys a closure
    by its pickled cells, and a compiled function pickles differently in
    every process, which would recompile the kernels each time.
    """

    @numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)
    def by_columns(x, x_start, y, y_start, width, symmetric, out, steps_out):
        n = x.shape[0]
        n_tiles = (width + TILE - 1) // TILE
        n_chunks = n_column_chunks(n_tiles)
        partial = np.zeros((n_chunks, n, y.shape[0]))
        # the chunks and tiles of steps_block, so the path sums come out the same
        steps_partial = np.zeros((n_chunks if steps_mask else 0, N_PATH_SUMS, n))
        sweep = SWEEP_BYTES // x.itemsize
        for c in prange(n_chunks):
            for t in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
                k0 = t * TILE
                tile_width = min(TILE, width - k0)
                xk0 = np.uint64(x_start + k0)
                yk0 = np.uint64(y_start + k0)
                for p0 in range(0, tile_width, sweep):
                    piece = min(sweep, tile_width - p0)
                    # unsigned, as the offsets (a signed sum would be a float in Numba)
                    xp, yp = xk0 + np.uint64(p0), yk0 + np.uint64(p0)
                    for i in range(0, n, GROUP):
                        _group_tile(op, zero, x, i, xp, y, yp, piece, symmetric, partial[c])
                if steps_mask:
                    # the tile is still in cache: its path sums cost no second read from memory
                    tile_sums(steps_mask, x, x_start + k0, x_start + k0 + tile_width, steps_partial[c])
        add_chunks(out, partial)
        if steps_mask:
            add_chunks(steps_out, steps_partial)

    @numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)
    def by_rows(x, x_start, y, y_start, width, symmetric, out):
        n_groups = (x.shape[0] + GROUP - 1) // GROUP
        # with symmetric pairs, group p shares an item with group n_groups-1-p so
        # that every item has about as many pairs and the triangle's work is balanced
        n_items = (n_groups + 1) // 2 if symmetric else n_groups
        for k0 in range(0, width, TILE):
            tile_width = min(TILE, width - k0)
            xk0 = np.uint64(x_start + k0)
            yk0 = np.uint64(y_start + k0)
            for p in prange(n_items):
                _group_tile(op, zero, x, GROUP * p, xk0, y, yk0, tile_width, symmetric, out)
                q = n_groups - 1 - p
                if symmetric and q != p:
                    _group_tile(op, zero, x, GROUP * q, xk0, y, yk0, tile_width, symmetric, out)

    return by_columns, by_rows


_KERNELS: dict = {}
# the path-sum accumulator by_columns takes when it adds none
_NO_STEPS = np.zeros((N_PATH_SUMS, 0))


def _kernels(op, dtype, steps_mask=0):
    key = (PairOp(op), np.dtype(dtype), steps_mask)
    if key not in _KERNELS:
        _KERNELS[key] = _build(key[0].code, accumulator_zero(key[1]), steps_mask)
    return _KERNELS[key]


def pairwise_block(x, x_start, x_stop, y, y_start, y_stop, op, out, scales=None, steps=None,
                   path_sums=ALL_PATH_SUMS):
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
    steps : (N_PATH_SUMS, N) float64 array, optional
        Also add x's path sums (the rows in ``path_sums``) to it, exactly as
        :func:`~wtraj.kernels.numba.steps.steps_block` would. With few rows
        and any op but ``unitdiff``, each tile's path sums are taken right
        after its pairwise sums, while the tile is in cache; otherwise
        ``steps_block`` runs after the pairwise kernel.
    """
    x = host_array(x)
    symmetric = y is None
    if symmetric:
        y, y_start = x, x_start
    else:
        y = host_array(y)
    few_pairs = x.shape[0] * y.shape[0] <= MAX_ROWS_FOR_COLUMN_CHUNKS**2
    width = x_stop - x_start
    fused = steps is not None and few_pairs and PairOp(op) is not PairOp.UNITDIFF
    if PairOp(op) is PairOp.UNITDIFF:
        x_scale, y_scale = scales
        launch = _unit_by_columns if few_pairs else _unit_by_rows
        launch(x, x_start, x_scale, y, y_start, y_scale, width, symmetric, out)
    elif few_pairs:
        by_columns = _kernels(op, x.dtype, path_mask(path_sums) if fused else 0)[0]
        by_columns(x, x_start, y, y_start, width, symmetric, out, steps if fused else _NO_STEPS)
    else:
        _kernels(op, x.dtype)[1](x, x_start, y, y_start, width, symmetric, out)
    if steps is not None and not fused:
        steps_block(x, x_start, x_stop, steps, path_sums)
