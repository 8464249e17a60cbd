"""Splitting the columns of a pass among ranks: contiguous ranges, balanced by bytes read.

Every sum of a pass adds over columns, so ranks that take disjoint columns
and add their float64 sums get the sums of one process. They get the same
float32 tile sums too when their ranges start where one process's blocks
can: on the ``COLUMN_ALIGN`` grid of the whole vector (without
``by_layer``), or at a tensor's start or a multiple of ``COLUMN_ALIGN``
inside it (``by_layer``). Results then differ from one process only in the
order of float64 additions.
"""

from __future__ import annotations

import bisect

from wtraj._blocks import COLUMN_ALIGN, ColumnCost, Columns, Source

# With by_layer, a cut moves to the nearest tensor boundary when that costs
# at most this fraction of a rank's share: whole tensors read whole files' regions.
TENSOR_SNAP = 0.25


def split_columns(source: Source, n_ranks: int, by_layer: bool) -> list[Columns]:
    """The columns each of ``n_ranks`` ranks takes: at most one range each, possibly none.

    Ranges are contiguous and in rank order, so a rank reads a contiguous
    run of tensors (of shard files, for a sharded checkpoint). With fewer
    cut points than ranks (a small model), the last ranks get no columns and
    contribute zeros.
    """
    cost = ColumnCost(source)
    total = cost.upto(source.n_params)
    offsets = [layer.offset for layer in source.layers]
    cuts = [0]
    for r in range(1, n_ranks):
        target = cost.column_at(total * r / n_ranks)
        cut = _allowed_cut(source, cost, offsets, target, total / n_ranks, by_layer)
        cuts.append(min(source.n_params, max(cuts[-1], cut)))
    cuts.append(source.n_params)
    return [((lo, hi),) if hi > lo else () for lo, hi in zip(cuts, cuts[1:])]


def _allowed_cut(
    source: Source, cost: ColumnCost, offsets: list[int], column: int, share: float, by_layer: bool
) -> int:
    """The cut nearest ``column`` (by bytes) at which a rank's blocks tile as one process's do."""
    if not by_layer:
        return _nearest(cost, column, _grid_below(column, 0), source.n_params)
    k = max(0, bisect.bisect_right(offsets, column) - 1)
    layer = source.layers[k]
    end = layer.offset + layer.size
    boundary = layer.offset if column - layer.offset <= end - column else end
    if cost.between(min(boundary, column), max(boundary, column)) <= TENSOR_SNAP * share:
        return boundary
    return _nearest(cost, column, _grid_below(column, layer.offset), end)


def _grid_below(column: int, origin: int) -> int:
    return origin + (column - origin) // COLUMN_ALIGN * COLUMN_ALIGN


def _nearest(cost: ColumnCost, column: int, below: int, end: int) -> int:
    """``below`` or the next grid point after it (capped at ``end``), whichever is nearer in bytes."""
    above = min(end, below + COLUMN_ALIGN)
    return below if cost.between(below, column) <= cost.between(column, above) else above
