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

Each piece of ``SWEEP`` columns is swept once per group of ``ROWS`` rows,
loading the ``ROWS + 2`` rows their sums need: every value is loaded and
widened about 1.5 times instead of four, and the five sums of the group's
rows are twenty independent vector accumulators. All groups sweep a piece
before the next piece, so every row of the block streams from memory at
once.

The kernels are compiled for the set of rows a pass asks for (a constant
bit mask): the sums, subtractions and loads of the others are not emitted.
Norms alone, or steps alone, need one FMA (and a subtraction) per value
instead of about nine float64 operations; with one accumulator per row,
``SINGLE_ROWS`` rows are swept together instead of four, so that more rows
stream from memory at once.
"""

import numba
import numpy as np
from numba import prange

from wtraj.kernels.contract import ALL_PATH_SUMS, N_PATH_SUMS, PathSum
from wtraj.kernels.numba._common import FASTMATH, TILE, add_chunks, host_array, load, n_column_chunks

# Rows whose sums one sweep of a tile accumulates: 4 rows x 5 sums are 20
# vector accumulators, plus 6 loaded rows, within AVX-512VL's 32 registers.
ROWS = 4

# Rows one sweep covers when a single sum is asked for: 12 accumulators and
# 13 loaded rows. Reading is what binds then, and more concurrent rows keep
# more of memory's bandwidth busy (measured: 8 rows 1.2x the memory floor, 12 rows 1.05-1.2x).
SINGLE_ROWS = 12

# Columns each group of rows sweeps before the next group starts (within a tile
# of TILE columns, whose chunks stay those of the pairwise kernels). Short
# sweeps touch every row of the block in turn, a few cache lines each, so the
# hardware prefetchers stream all rows at once; a group sweeping a whole tile
# waited on its 4 new rows alone. The fastest width measured (bench/RESULTS.md,
# "Short sweeps").
SWEEP = 128

# The rows of the path sums as bits of the compiled kernels' constant mask.
NORM2, STEP2, BEND2, SKIP2, STEP_DOT = (1 << int(row) for row in PathSum)


def path_mask(sums):
    """The bit mask of a set of PathSum rows."""
    return sum(1 << int(PathSum(row)) for row in set(sums))


@numba.njit(inline="always", fastmath=FASTMATH)
def _wide(x, row, k):
    return np.float64(load(x[row, k]))


@numba.njit(inline="always", fastmath=FASTMATH)
def _group_sums(mask, x, i, k0, k1, partial):
    """Add the path sums of rows i..i+ROWS-1 over columns k0..k1 to partial, those in mask.

    Every row goes through this same loop, the rows past the end clamped to
    the last one (their sums are computed and dropped): identical rows get
    bitwise identical norms wherever they stand, which cosine's row scales
    rely on. ``mask`` is a constant of the compiled kernel, so its tests
    fold away and the loads no wanted sum uses are not emitted.
    """
    last = x.shape[0] - 1
    r0 = min(i, last)
    r1 = min(i + 1, last)
    r2 = min(i + 2, last)
    r3 = min(i + 3, last)
    r4 = min(i + 4, last)
    r5 = min(i + 5, last)
    norm0 = norm1 = norm2 = norm3 = 0.0
    step0 = step1 = step2 = step3 = 0.0
    bend0 = bend1 = bend2 = bend3 = 0.0
    skip0 = skip1 = skip2 = skip3 = 0.0
    dot0 = dot1 = dot2 = dot3 = 0.0
    for k in range(np.uint64(k0), np.uint64(k1)):
        x0 = _wide(x, r0, k)
        x1 = _wide(x, r1, k)
        x2 = _wide(x, r2, k)
        x3 = _wide(x, r3, k)
        x4 = _wide(x, r4, k)
        x5 = _wide(x, r5, k)
        u0 = x1 - x0
        u1 = x2 - x1
        u2 = x3 - x2
        u3 = x4 - x3
        u4 = x5 - x4
        if mask & NORM2:
            norm0 += x0 * x0
            norm1 += x1 * x1
            norm2 += x2 * x2
            norm3 += x3 * x3
        if mask & STEP2:
            step0 += u0 * u0
            step1 += u1 * u1
            step2 += u2 * u2
            step3 += u3 * u3
        if mask & BEND2:
            bend = u1 - u0
            bend0 += bend * bend
            bend = u2 - u1
            bend1 += bend * bend
            bend = u3 - u2
            bend2 += bend * bend
            bend = u4 - u3
            bend3 += bend * bend
        if mask & SKIP2:
            skip = x2 - x0
            skip0 += skip * skip
            skip = x3 - x1
            skip1 += skip * skip
            skip = x4 - x2
            skip2 += skip * skip
            skip = x5 - x3
            skip3 += skip * skip
        if mask & STEP_DOT:
            dot0 += u0 * u1
            dot1 += u1 * u2
            dot2 += u2 * u3
            dot3 += u3 * u4
    n = last + 1
    _add_row(mask, partial, i, n, norm0, step0, bend0, skip0, dot0)
    _add_row(mask, partial, i + 1, n, norm1, step1, bend1, skip1, dot1)
    _add_row(mask, partial, i + 2, n, norm2, step2, bend2, skip2, dot2)
    _add_row(mask, partial, i + 3, n, norm3, step3, bend3, skip3, dot3)


@numba.njit(inline="always", fastmath=FASTMATH)
def _single_sums(mask, x, i, k0, k1, partial):
    """Add the one sum in mask (NORM2 or STEP2) of rows i..i+SINGLE_ROWS-1 over columns k0..k1 to partial.

    Rows past the end are clamped to the last one, as in _group_sums.
    """
    last = x.shape[0] - 1
    r0 = min(i, last)
    r1 = min(i + 1, last)
    r2 = min(i + 2, last)
    r3 = min(i + 3, last)
    r4 = min(i + 4, last)
    r5 = min(i + 5, last)
    r6 = min(i + 6, last)
    r7 = min(i + 7, last)
    r8 = min(i + 8, last)
    r9 = min(i + 9, last)
    r10 = min(i + 10, last)
    r11 = min(i + 11, last)
    # the row after the group: only steps read it
    r12 = min(i + 12, last)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = s11 = 0.0
    for k in range(np.uint64(k0), np.uint64(k1)):
        x0 = _wide(x, r0, k)
        x1 = _wide(x, r1, k)
        x2 = _wide(x, r2, k)
        x3 = _wide(x, r3, k)
        x4 = _wide(x, r4, k)
        x5 = _wide(x, r5, k)
        x6 = _wide(x, r6, k)
        x7 = _wide(x, r7, k)
        x8 = _wide(x, r8, k)
        x9 = _wide(x, r9, k)
        x10 = _wide(x, r10, k)
        x11 = _wide(x, r11, k)
        if mask == NORM2:
            s0 += x0 * x0
            s1 += x1 * x1
            s2 += x2 * x2
            s3 += x3 * x3
            s4 += x4 * x4
            s5 += x5 * x5
            s6 += x6 * x6
            s7 += x7 * x7
            s8 += x8 * x8
            s9 += x9 * x9
            s10 += x10 * x10
            s11 += x11 * x11
        else:
            x12 = _wide(x, r12, k)
            u = x1 - x0
            s0 += u * u
            u = x2 - x1
            s1 += u * u
            u = x3 - x2
            s2 += u * u
            u = x4 - x3
            s3 += u * u
            u = x5 - x4
            s4 += u * u
            u = x6 - x5
            s5 += u * u
            u = x7 - x6
            s6 += u * u
            u = x8 - x7
            s7 += u * u
            u = x9 - x8
            s8 += u * u
            u = x10 - x9
            s9 += u * u
            u = x11 - x10
            s10 += u * u
            u = x12 - x11
            s11 += u * u
    sums = (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11)
    n = last + 1
    for q in range(SINGLE_ROWS):
        _add_row(mask, partial, i + q, n, sums[q], sums[q], 0.0, 0.0, 0.0)


@numba.njit(inline="always")
def _add_row(mask, partial, i, n, norm2, step2, bend2, skip2, step_dot):
    """Add row i's wanted sums, those that exist (a step needs row i+1, an angle row i+2)."""
    if mask & NORM2 and i < n:
        partial[PathSum.NORM2, i] += norm2
    if mask & STEP2 and i + 1 < n:
        partial[PathSum.STEP2, i] += step2
    if i + 2 < n:
        if mask & BEND2:
            partial[PathSum.BEND2, i] += bend2
        if mask & SKIP2:
            partial[PathSum.SKIP2, i] += skip2
        if mask & STEP_DOT:
            partial[PathSum.STEP_DOT, i] += step_dot


@numba.njit(inline="always", fastmath=FASTMATH)
def tile_sums(mask, x, k0, k1, partial):
    """Add the path sums in mask of all rows over columns k0..k1 (one tile) to partial.

    Every group of rows sweeps one piece of ``SWEEP`` columns before any
    moves to the next, so that all rows of the block are read a little at a
    time, side by side (see ``SWEEP``).
    """
    n = x.shape[0]
    for s0 in range(k0, k1, SWEEP):
        s1 = min(s0 + SWEEP, k1)
        if mask == NORM2 or mask == STEP2:
            for i in range(0, n, SINGLE_ROWS):
                _single_sums(mask, x, i, s0, s1, partial)
        else:
            for i in range(0, n, ROWS):
                _group_sums(mask, x, i, s0, s1, partial)


def _build(mask):
    """Compile the kernel of one set of rows (closing over a plain number, so the disk cache holds)."""

    @numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)
    def by_columns(x, start, stop, out):
        n = x.shape[0]
        n_tiles = (stop - start + TILE - 1) // TILE
        n_chunks = n_column_chunks(n_tiles)
        partial = np.zeros((n_chunks, N_PATH_SUMS, n))
        for c in prange(n_chunks):
            for t in range(c * n_tiles // n_chunks, (c + 1) * n_tiles // n_chunks):
                k0 = start + t * TILE
                k1 = min(k0 + TILE, stop)
                tile_sums(mask, x, k0, k1, partial[c])
        add_chunks(out, partial)

    return by_columns


_KERNELS: dict = {}


def _kernel(sums):
    mask = path_mask(sums)
    if mask not in _KERNELS:
        _KERNELS[mask] = _build(mask)
    return _KERNELS[mask]


def steps_block(x, start, stop, out, sums=ALL_PATH_SUMS):
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
    sums : set of PathSum
        The rows to add; the others are left as they are.
    """
    _kernel(sums)(host_array(x), start, stop, out)
