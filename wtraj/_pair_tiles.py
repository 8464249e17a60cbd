"""Splitting the pairs of many checkpoints among ranks: tiles of the (N, M) matrix, each from its rows only.

With tens of thousands of checkpoints the pairs, not the columns, are the
work: ``N^2 D / 2`` operations against ``N D`` values read. The rows are cut
into ``T`` contiguous tiles and the tile pairs ``(a, b)`` (``a <= b`` when X
is paired with itself) are dealt to the ranks; a rank runs one pass per tile
pair over the rows of its two tiles only (reading only their files), on
the same column grid as one process, so every pair's float32 tile sums are
one process's. The assembled matrix is summed over the ranks (each entry
comes from exactly one rank).
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np

from wtraj._blocks import Source
from wtraj._group import PassGroup
from wtraj._pass import Pass

# tile pairs per rank to aim at: more evens out the load (diagonal tiles cost half)
# at the price of reading each row more often
TILE_PAIRS_PER_RANK = 2


@runtime_checkable
class RowSliceable(Protocol):
    def rows_between(self, lo: int, hi: int) -> Source: ...


def row_tiles(n: int, n_tiles: int) -> list[tuple[int, int]]:
    """``n_tiles`` contiguous, nearly equal row ranges covering ``range(n)`` (fewer if ``n`` is small)."""
    edges = np.linspace(0, n, min(n, n_tiles) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges, edges[1:]) if b > a]


def tile_pairs(n: int, m: int, symmetric: bool, size: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """All tile pairs of an (n, m) matrix, in a fixed order, enough for ``size`` ranks."""
    wanted = TILE_PAIRS_PER_RANK * size
    if symmetric:
        # T (T + 1) / 2 tile pairs
        n_tiles = max(1, math.ceil((math.sqrt(8 * wanted + 1) - 1) / 2))
        tiles = row_tiles(n, n_tiles)
        return [(tiles[a], tiles[b]) for a in range(len(tiles)) for b in range(a, len(tiles))]
    n_tiles = max(1, math.ceil(math.sqrt(wanted)))
    return [(a, b) for a in row_tiles(n, n_tiles) for b in row_tiles(m, n_tiles)]


def tiled_pair_sums(
    x_source: Source,
    y_source: Source | None,
    kernels: Any,
    pair_op: str,
    pair_scales: tuple[np.ndarray, np.ndarray] | None,
    ranks: PassGroup,
    **pass_options: Any,
) -> np.ndarray:
    """The (N, M) pairwise sums (``i < j`` only when symmetric): this rank's tiles computed, then summed.

    ``pass_options`` go to every tile's :class:`~wtraj._pass.Pass` (budget, progress).
    The caller has checked the input for NaN and Inf (a column-split pass).
    """
    for source in (x_source, y_source):
        if source is not None and not isinstance(source, RowSliceable):
            raise TypeError(
                f'split="pairs" needs an array, a list of rows or checkpoints; got {type(source).__name__}.'
            )
    symmetric = y_source is None
    other = x_source if symmetric else y_source
    n, m = x_source.n_checkpoints, other.n_checkpoints
    pairs = np.zeros((n, m))
    error = None
    try:
        for (a0, a1), (b0, b1) in tile_pairs(n, m, symmetric, ranks.size)[ranks.rank :: ranks.size]:
            diagonal = symmetric and a0 == b0
            scales = None
            if pair_scales is not None:
                scales = (pair_scales[0][a0:a1], pair_scales[1][b0:b1])
            tile = Pass(
                x_source.rows_between(a0, a1), kernels,
                y_source=None if diagonal else other.rows_between(b0, b1),
                check_finite=False, **pass_options,
            ).run(pair_op=pair_op, pair_scales=scales)  # fmt: skip
            if diagonal:
                # the symmetric kernels fill i < j only: keep the rest zero for the sum
                pairs[a0:a1, b0:b1] = np.triu(tile.pairs, 1)
            else:
                pairs[a0:a1, b0:b1] = tile.pairs
    except Exception as caught:
        error = caught
    what = f"wtraj: the pair tiles of {n} checkpoints"
    ranks.agree(error, what)
    ranks.all_reduce([pairs], what)
    return pairs
