"""The shared types of a pass: layers, column blocks, the Source protocol, and how columns are cut.

A leaf module: it imports nothing from wtraj, so sources (arrays, checkpoint
folders), the pass and the kernels can all import it without a cycle.

A source stands for an ``(n_checkpoints, n_params)`` matrix that may be far
larger than memory. Kernels never see the whole matrix: a source hands out
:class:`Block` s, each a set of columns for *all* checkpoints, and the kernels
add each block's contribution to float64 accumulators. An in-memory array,
a memory map and a folder of checkpoint files therefore give the same result.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# Blocks are cut at multiples of this many columns, so that every backend's
# float32 tile sums cover the same columns whatever the block width.
COLUMN_ALIGN = 4096

# Widest block, in bytes over all rows, of data in memory that is read twice (copied
# into a buffer, then summed; or summed by two kernels in turn): small enough that the
# block is still in the last-level cache the second time.
CACHE_BLOCK_BYTES = 8 << 20

# Widest block, in bytes over all rows, of data in memory that one kernel reads in
# place: each launch costs a few microseconds and a wake-up of the kernel threads
# (61 launches of 8 MiB made step_norms 5-10 % slower at N = 32, D = 4e6), and the
# progress bar and the search for non-finite values still move in steps.
VIEW_BLOCK_BYTES = 64 << 20


def bytes_block_width(block_bytes: int, n_rows: int, bytes_per_value: int) -> int:
    """Columns whose ``n_rows`` rows of ``bytes_per_value`` bytes fill at most ``block_bytes``.

    One grid step (``COLUMN_ALIGN``) at least.
    """
    return max(COLUMN_ALIGN, block_bytes // max(1, n_rows * bytes_per_value))


# Sorted, disjoint ``(lo, hi)`` ranges of flattened columns that a pass covers.
Columns = tuple[tuple[int, int], ...]


# slots: a checkpoint may hold a million tensors, one Layer each
@dataclass(frozen=True, slots=True)
class Layer:
    """One tensor of a checkpoint: where it lies in the flattened vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Block:
    """Columns ``[start, stop)`` of ``data`` for every checkpoint.

    ``data`` is a 2-D NumPy array or torch tensor whose rows are the
    checkpoints and whose last axis is contiguous; kernels read the column
    range in place, so a block of an in-memory array is a view, not a copy.
    """

    data: Any
    start: int
    stop: int
    # position of column ``start`` in the flattened parameter vector
    offset: int
    # index into ``source.layers`` when the block lies inside one tensor, else -1
    layer: int = -1

    @property
    def width(self) -> int:
        return self.stop - self.start


@runtime_checkable
class Source(Protocol):
    """What a pass needs from an input; :func:`wtraj._source.as_source` makes one.

    Sources declare facts (their buffers' bytes per column, the bytes a
    column costs to read); the pass (:class:`wtraj._pass.Pass`) owns the
    decisions made from them: block width, progress bar, finite check.
    A source that reads its blocks on threads of its own may say how many
    (``reading_threads``, optional): the pass leaves them their cores.
    """

    n_checkpoints: int
    n_params: int
    # canonical dtype name of the values handed out: "float16", "bfloat16", "float32", "float64"
    dtype: str
    # "cpu" or "cuda"
    device: str
    # one label per checkpoint row, used in error messages and reports
    names: list[str]
    layers: list[Layer]
    # whether passes refuse NaN and Inf (a checkpoint set opened with check_finite=False says no)
    check_finite: bool
    # the budget in bytes the source was opened with, used when a call gives none
    memory_budget: int | None
    # bytes of the source's own block buffers per column of block width (all rows,
    # every buffer in flight); 0 when blocks are views of data already in memory
    buffer_bytes_per_column: int
    # per layer, bytes read per column over all rows: the cost of a column, to
    # balance a split and to count progress
    stored_bytes_per_column: Sequence[int]

    def blocks(
        self, max_width: int, by_layer: bool = False, columns: Columns | None = None
    ) -> Iterator[Block]:
        """Yield blocks of at most ``max_width`` columns covering the columns once, in order.

        ``columns`` restricts the pass to those ranges (all columns when None).
        With ``by_layer`` every block lies within one layer and says which
        (``Block.layer``); without, blocks should start on the
        ``COLUMN_ALIGN`` grid (the pass re-cuts those that do not).
        """
        ...

    def describe(self, row: int, column: int) -> str:
        """Say where element ``(row, column)`` comes from, for an error message."""
        ...


def all_columns(n_params: int) -> Columns:
    return ((0, n_params),)


def block_spans(
    layers: Sequence[Layer], n_params: int, width: int, by_layer: bool, columns: Columns | None
) -> Iterator[tuple[int, int, int]]:
    """``(offset, width, layer)`` of every block of a pass, in column order.

    Without ``by_layer``, each range is cut every ``width`` columns from its
    start (a range that starts on the ``COLUMN_ALIGN`` grid stays on it) and a
    block's layer is -1 when it spans several tensors. With ``by_layer``,
    blocks never cross a tensor boundary and a tensor is cut every ``width``
    columns from where the range enters it.
    """
    offsets = [layer.offset for layer in layers]
    for lo, hi in columns if columns is not None else all_columns(n_params):
        k = max(0, bisect.bisect_right(offsets, lo) - 1)
        if by_layer:
            while k < len(layers) and layers[k].offset < hi:
                layer = layers[k]
                a, b = max(lo, layer.offset), min(hi, layer.offset + layer.size)
                for start in range(a, b, width):
                    yield start, min(width, b - start), k
                k += 1
            continue
        for start in range(lo, hi, width):
            stop = min(start + width, hi)
            while layers[k].offset + layers[k].size <= start:
                k += 1
            inside = stop <= layers[k].offset + layers[k].size
            yield start, stop - start, k if inside else -1


def widest_span(
    layers: Sequence[Layer], n_params: int, width: int, by_layer: bool, columns: Columns | None
) -> int:
    """The width of the widest block :func:`block_spans` yields (0 when it yields none)."""
    ranges = columns if columns is not None else all_columns(n_params)
    if not by_layer:
        return min(width, max((hi - lo for lo, hi in ranges), default=0))
    widest = 0
    for lo, hi in ranges:
        for layer in layers:
            overlap = min(hi, layer.offset + layer.size) - max(lo, layer.offset)
            widest = max(widest, min(width, overlap))
    return widest


class ColumnCost:
    """Bytes read for any range of columns of a source, over all rows, in O(log n_layers)."""

    def __init__(self, source: Source):
        self._offsets = [layer.offset for layer in source.layers]
        self._costs = list(source.stored_bytes_per_column)
        # bytes before each layer's first column
        self._before = [0]
        for layer, cost in zip(source.layers, self._costs):
            self._before.append(self._before[-1] + layer.size * cost)
        self.n_params = source.n_params

    def upto(self, column: int) -> int:
        """Bytes of columns ``[0, column)``."""
        if column >= self.n_params:
            return self._before[-1]
        k = max(0, bisect.bisect_right(self._offsets, column) - 1)
        return self._before[k] + (column - self._offsets[k]) * self._costs[k]

    def between(self, lo: int, hi: int) -> int:
        """Bytes of columns ``[lo, hi)``."""
        return self.upto(hi) - self.upto(lo)

    def column_at(self, nbytes: float) -> int:
        """The column where the bytes read from column 0 reach ``nbytes`` (rounded down)."""
        if nbytes <= 0:
            return 0
        k = bisect.bisect_right(self._before, nbytes) - 1
        if k >= len(self._offsets):
            return self.n_params
        return self._offsets[k] + int((nbytes - self._before[k]) // max(1, self._costs[k]))
