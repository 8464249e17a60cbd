"""Keeping the float sums of a pass in range: float32 tiles recomputed, float64 limits, banded checks.

Float32 tile sums overflow for values near 1e19 and lose terms to underflow
for differences below ~1e-19; the rows involved are summed again from float64
copies (:class:`Float64Rows`). Float64 squares leave float64's range above
~1e154 (an error) and below ~1e-150 (a warning). Every check of an (N, M)
matrix runs over bands of rows, because the matrix may be most of memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from wtraj._blocks import Block, Columns, Source
from wtraj._dtypes import host_floats, is_torch_tensor
from wtraj.kernels.contract import PairOp, PathSum

# The pairwise ops that sum float32 tiles for float32, float16 and bfloat16
# input (UNITDIFF is float64 throughout).
FLOAT32_TILE_OPS = frozenset({PairOp.SQDIFF, PairOp.ABSDIFF, PairOp.DOT})
# Squares below these (float32 tiles: 2**-126, the smallest normal float32;
# float64: 2**-1022) lose digits to underflow, at most one such value's worth per
# term. A sum of D terms that stays above D * FLOOR is then exact to ~1e-9.
FLOAT32_TILE_FLOOR = 2.0**-96
FLOAT64_FLOOR = 2.0**-992
# Checks of an (N, M) matrix run over bands of rows of about this many values:
# their temporaries stay small beside the matrix, which may be most of memory.
BAND_VALUES = 1 << 16


@dataclass
class _PairRange:
    """Whether the used pairwise sums are all finite, and the least positive of them."""

    finite: bool
    least_positive: float


def _pair_range(pairs: np.ndarray, symmetric: bool) -> _PairRange:
    """The range of the entries callers read (only ``i < j`` when symmetric), a band of rows at a time.

    The band bounds the temporaries: the matrix itself may be most of memory.
    """
    least_positive = np.inf
    n = pairs.shape[0]
    band = max(1, BAND_VALUES // max(1, pairs.shape[1]))
    for start in range(0, n, band):
        rows = pairs[start : start + band]
        if symmetric:
            above = np.arange(pairs.shape[1])[None, :] > np.arange(start, start + rows.shape[0])[:, None]
            rows = rows[above]
        if rows.size == 0:
            continue
        if not np.isfinite(rows).all():
            # whoever asks recomputes or raises: the rest of the range does not matter
            return _PairRange(False, np.nan)
        positive = rows[rows > 0]
        if positive.size:
            least_positive = min(least_positive, float(positive.min()))
    return _PairRange(True, least_positive)


def rows_out_of_range(pairs: np.ndarray, symmetric: bool, n_params: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of X and of Y whose float32 tile sums may have overflowed or underflowed.

    A non-finite sum from finite input overflowed. A sum whose magnitude is
    below ``n_params * FLOAT32_TILE_FLOOR`` may have lost terms to underflow
    (squares, products or differences below ~1e-38): values that differ by
    less than ~1e-19 everywhere, identical rows included, or tiny dot
    products. Above it, what underflow can lose is below 1e-9 of the sum.
    Returns sorted row indices (of X twice when symmetric), empty when none.
    """
    floor = n_params * FLOAT32_TILE_FLOOR
    x_rows, y_rows = set(), set()
    band = max(1, BAND_VALUES // max(1, pairs.shape[1]))
    for start in range(0, pairs.shape[0], band):
        rows = pairs[start : start + band]
        magnitude = np.abs(rows)
        # NaN compares False: it counts as out of range too
        bad = ~((magnitude >= floor) & (magnitude < np.inf))
        if symmetric:
            bad &= np.arange(pairs.shape[1])[None, :] > np.arange(start, start + rows.shape[0])[:, None]
        i, j = np.nonzero(bad)
        x_rows.update((i + start).tolist())
        y_rows.update(j.tolist())
    if symmetric:
        x_rows = y_rows = x_rows | y_rows
    return np.array(sorted(x_rows), dtype=np.int64), np.array(sorted(y_rows), dtype=np.int64)


# the path sums check_float64_range reads: a pass over float64 input computes them whenever it computes any
RANGE_CHECK_SUMS = frozenset({PathSum.NORM2, PathSum.STEP2})


def check_float64_range(sums: Any, pair_op: PairOp | None, symmetric: bool, x_source: Source) -> None:
    """Float64 input whose squares overflow raises, naming a row; one whose squares underflow warns."""
    path_sums = [s[sorted(RANGE_CHECK_SUMS)] for s in (sums.steps, sums.y_steps) if s is not None]
    extent = _pair_range(sums.pairs, symmetric) if pair_op else _PairRange(True, np.inf)
    if not (extent.finite and all(np.isfinite(s).all() for s in path_sums)):
        # the first row of X with a sum out of range: a norm or step, else a pair
        if sums.steps is not None and not np.isfinite(sums.steps[sorted(RANGE_CHECK_SUMS)]).all():
            row = int(np.flatnonzero(~np.isfinite(sums.steps[sorted(RANGE_CHECK_SUMS)]).all(axis=0))[0])
        elif pair_op:
            row = int(np.flatnonzero(~np.isfinite(sums.pairs).all(axis=1))[0])
        else:
            row = 0
        raise ValueError(
            f"{x_source.names[row]}: the squares of its float64 values overflow float64 "
            "(values or differences above ~1e154); divide the input by a power of two "
            "(e.g. 2**-500) first: distances scale with it, angles do not change."
        )
    floor = x_source.n_params * FLOAT64_FLOOR
    least = [float(s[s > 0].min()) for s in path_sums if (s > 0).any()]
    if pair_op in (PairOp.SQDIFF, PairOp.UNITDIFF):
        least.append(extent.least_positive)
    if least and min(least) < floor:
        warnings.warn(
            "some squared norms, steps or distances of this float64 input are below "
            f"{floor:.1e}: squares of values below ~1e-150 underflow and lose digits. "
            "Multiply the input by a power of two (e.g. 2**500) first.",
            RuntimeWarning,
            stacklevel=3,
        )


class Float64Rows:
    """Some rows of a source, each block a float64 copy of them (bfloat16 bit patterns decoded)."""

    # the pass over these rows follows one that checked the input
    check_finite = False

    def __init__(self, source: Source, rows: np.ndarray):
        self.source, self.rows = source, rows
        self.n_checkpoints, self.n_params = len(rows), source.n_params
        self.dtype, self.device = "float64", source.device
        self.names = [source.names[r] for r in rows]
        self.layers = source.layers
        self.memory_budget = source.memory_budget
        # every row of the source is read to copy some of them
        self.stored_bytes_per_column = source.stored_bytes_per_column
        self.buffer_bytes_per_column = source.buffer_bytes_per_column + 8 * len(rows)

    def blocks(
        self, max_width: int, by_layer: bool = False, columns: Columns | None = None
    ) -> Iterator[Block]:
        for block in self.source.blocks(max_width, by_layer=by_layer, columns=columns):
            columns = block.data[:, block.start : block.stop]
            if is_torch_tensor(columns):
                import torch

                index = torch.as_tensor(self.rows, device=columns.device)
                wide = host_floats(columns.index_select(0, index)).to(torch.float64)
            else:
                wide = np.asarray(host_floats(columns[self.rows]), dtype=np.float64)
            yield Block(wide, 0, block.width, block.offset, block.layer)

    def describe(self, row: int, column: int) -> str:
        return self.source.describe(int(self.rows[row]), column)


def all_finite(sums: np.ndarray) -> bool:
    """``np.isfinite(sums).all()`` a band of rows at a time, without a mask as large as the sums."""
    rows = sums.reshape(-1, sums.shape[-1])
    band = max(1, BAND_VALUES // max(1, rows.shape[1]))
    return all(np.isfinite(rows[start : start + band]).all() for start in range(0, rows.shape[0], band))


def mirror_upper_triangle(pairs: np.ndarray, diagonal: Any = 0.0) -> np.ndarray:
    """Make a square matrix of which only ``i < j`` was computed symmetric, in place.

    The entries on and below the diagonal are overwritten (the kernels leave
    scratch there); ``diagonal`` fills the diagonal. A band of rows at a time,
    so that no temporary approaches the size of the matrix.
    """
    n = pairs.shape[0]
    # the diagonal square's index arrays take 16 band^2 bytes
    band = 256
    for start in range(0, n, band):
        stop = min(start + band, n)
        pairs[start:stop, :start] = pairs[:start, start:stop].T
        square = pairs[start:stop, start:stop]
        below = np.tril_indices(stop - start, -1)
        square[below] = square.T[below]
    np.fill_diagonal(pairs, diagonal)
    return pairs
