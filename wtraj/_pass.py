"""One pass over the columns: blocks from the sources, through a backend's kernels, into float64 sums.

Every public function is a thin layer over :class:`Pass`: it says which
sums it needs (pairwise sums of one elementwise op, path sums), gets them in
a single pass over the columns, and turns them into its result. The pass
owns what a pass decides: the memory budget and the block width, the
progress bar, the finite check, the columns it covers (all, a subset, or
this rank's share of a process group) and, across ranks, the one all-reduce
of its sums.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from wtraj._block_streams import on_grid, paired_blocks
from wtraj._blocks import (
    CACHE_BLOCK_BYTES,
    COLUMN_ALIGN,
    Block,
    ColumnCost,
    Columns,
    Source,
    all_columns,
    bytes_block_width,
)
from wtraj._dtypes import BFLOAT16_BITS, itemsize
from wtraj._engine import PendingBackend
from wtraj._finite import Location, first_nonfinite, nonfinite_error
from wtraj._group import PassGroup
from wtraj._memory import resolve_memory_budget
from wtraj._progress import progress_bar
from wtraj._ranges import (
    FLOAT32_TILE_OPS,
    RANGE_CHECK_SUMS,
    Float64Rows,
    all_finite,
    check_float64_range,
    rows_out_of_range,
)
from wtraj._split import split_columns
from wtraj.kernels.contract import ALL_PATH_SUMS, N_PATH_SUMS, PathSum

# Sources with buffers of their own (checkpoints read from disk) get blocks
# whose buffers take at most this in all, however large the budget: the read of
# the first block and the kernels on the last are not overlapped with anything,
# and every buffer page is touched fresh. 64 MiB is 2 MiB reads per row for 16
# float32 checkpoints; wider blocks were slower, 2 GiB of buffers 2.5x slower
# (bench/RESULTS.md, "Streamed pass to the read floor").
STREAM_BUFFER_BYTES = 64 << 20
# ...but never narrower than this, so that each row's read stays long (1 MiB of
# float32) with many checkpoints, as far as the budget allows
MIN_STREAM_WIDTH = 1 << 18


def _path_rows(asked: bool | frozenset[PathSum]) -> frozenset[PathSum]:
    """The path-sum rows a pass computes: all for True, none for False, else the rows named."""
    if isinstance(asked, (bool, np.bool_)):
        return ALL_PATH_SUMS if asked else frozenset()
    return frozenset(PathSum(row) for row in asked)


@dataclass
class Sums:
    """What one pass accumulated, in float64 NumPy arrays.

    ``pairs`` is (N, M) (upper triangle only when X is paired with itself),
    ``steps`` is (N_PATH_SUMS, N) rows as in ``wtraj.kernels.contract.PathSum``,
    ``y_steps`` is the same for Y. With ``by_layer`` each gets a leading
    layer axis in ``layer_pairs`` / ``layer_steps`` and the totals are their sums.
    """

    pairs: np.ndarray | None = None
    steps: np.ndarray | None = None
    y_steps: np.ndarray | None = None
    layer_pairs: np.ndarray | None = None
    layer_steps: np.ndarray | None = None


class Pass:
    """A pass over the columns of X (and Y), ready to run; :meth:`run` may be called more than once.

    Parameters
    ----------
    x_source, y_source : Source
        The data; Y is paired with X column by column.
    kernels : module
        The backend's kernel package (``zeros``, ``pairwise_block``, ``steps_block``, ``to_numpy``).
    by_layer : bool
        Keep every tensor's sums apart (blocks never span two tensors).
    memory_budget : int or str, optional
        Bytes the sources' block buffers may take together; default the
        budget X was opened with, else ``min(2 GiB, RAM / 8)``. The block
        width is ``budget // bytes per column`` (what the sources declare:
        :attr:`~wtraj._blocks.Source.buffer_bytes_per_column`), cut down to
        a multiple of ``COLUMN_ALIGN``, and at most the width whose buffers
        take ``STREAM_BUFFER_BYTES`` (or ``MIN_STREAM_WIDTH`` columns, if
        wider): a budget sets a ceiling, not a target. A budget below one
        block warns and uses one block. A source whose blocks are off the
        grid is re-cut through one more buffer of that width.
    progress : bool, optional
        Progress bar of the bytes read (on rank 0 only, in a group).
        The CPU kernels run on the cores the sources' reading threads leave
        (``reading_threads``, when a source declares it; at least one).
    check_finite : bool
        Raise on NaN and Inf (also off when a source says so).
    columns : tuple of (lo, hi), optional
        Cover only these columns. With a group and no ``columns``, this
        rank's share (:func:`wtraj._split.split_columns`).
    group : PassGroup, optional
        Ranks that each cover their columns and add their sums.
    """

    def __init__(
        self,
        x_source: Source,
        kernels: Any,
        *,
        y_source: Source | None = None,
        by_layer: bool = False,
        memory_budget: int | str | None = None,
        progress: bool | None = None,
        check_finite: bool = True,
        columns: Columns | None = None,
        group: PassGroup | None = None,
    ):
        self.x_source, self.y_source, self.kernels = x_source, y_source, kernels
        self.by_layer = by_layer
        self.budget = resolve_memory_budget(
            memory_budget if memory_budget is not None else x_source.memory_budget
        )
        self.width = self._block_width()
        self.progress = progress if group is None or group.rank == 0 else False
        self.check_finite = (
            check_finite and x_source.check_finite and (y_source is None or y_source.check_finite)
        )
        if columns is None and group is not None:
            columns = split_columns(x_source, group.size, by_layer)[group.rank]
        self.columns = columns
        self.group = group

    def _buffer_bytes_per_column(self) -> int:
        """Bytes of the sources' own buffers per column of a block (0: both read in place)."""
        return self.x_source.buffer_bytes_per_column + (
            self.y_source.buffer_bytes_per_column if self.y_source else 0
        )

    def _block_width(self) -> int:
        """Columns per block: streaming-sized, and such that the sources' buffers stay within the budget."""
        per_column = self._buffer_bytes_per_column()
        if per_column == 0:
            # views of data in memory: the sources cut blocks to their own (cache) sizes
            return max(COLUMN_ALIGN, self.x_source.n_params)
        width = self.budget // per_column // COLUMN_ALIGN * COLUMN_ALIGN
        if width < COLUMN_ALIGN:
            warnings.warn(
                f"memory_budget={self.budget} bytes is less than the smallest block: "
                f"{COLUMN_ALIGN} columns of these {self.x_source.n_checkpoints} checkpoints take "
                f"{COLUMN_ALIGN * per_column} bytes of buffers, which the pass uses instead.",
                RuntimeWarning,
                stacklevel=4,
            )
            width = COLUMN_ALIGN
        streaming = max(MIN_STREAM_WIDTH, STREAM_BUFFER_BYTES // per_column // COLUMN_ALIGN * COLUMN_ALIGN)
        return min(width, streaming)

    def _width_for(self, ops: _BlockOps) -> int:
        """Columns per block of this pass: narrower where data in memory is read in place by two kernels."""
        in_place = self._buffer_bytes_per_column() == 0
        if not (in_place and ops.pair_op and (ops.steps or ops.y_steps)):
            return self.width
        # the pairs, then the path sums (where a backend does not sum them on its
        # tiles): the block should still be in the cache for the second kernel
        n_rows = self.x_source.n_checkpoints + (self.y_source.n_checkpoints if self.y_source else 0)
        bytes_per_value = max(itemsize(s.dtype) for s in (self.x_source, self.y_source) if s is not None)
        return min(self.width, bytes_block_width(CACHE_BLOCK_BYTES, n_rows, bytes_per_value))

    def run(
        self,
        pair_op: str | None = None,
        pair_scales: tuple[np.ndarray, np.ndarray] | None = None,
        steps: bool | frozenset[PathSum] = False,
        y_steps: bool | frozenset[PathSum] = False,
    ) -> Sums:
        """Run the pass and return the requested float64 sums, over all columns and ranks.

        ``steps`` and ``y_steps`` ask for X's and Y's path sums: True for all
        the rows, or the set of :class:`~wtraj.kernels.contract.PathSum` rows
        the caller reads (the others are left undefined, and the kernels may
        skip their work).

        ``pair_scales`` are the row factors of the ``"unitdiff"`` op (X's and
        Y's, or X's twice). Pairwise sums that float32 tiles may have lost to
        overflow or underflow are computed again from float64 copies of the
        rows involved (:func:`wtraj._ranges.rows_out_of_range`); float64 input
        whose squares leave float64's range raises or warns
        (:func:`wtraj._ranges.check_float64_range`). In a group, every rank
        returns the same sums, raises the same error, or raises naming the
        rank that failed.
        """
        if pair_op == "unitdiff" and pair_scales is None:
            raise ValueError('pair_op="unitdiff" needs pair_scales, the factors of the rows.')
        steps, y_steps = _path_rows(steps), _path_rows(y_steps)
        if self.x_source.dtype == "float64":
            # the range check of float64 input reads the norms and steps of each row asked for
            steps = steps | RANGE_CHECK_SUMS if steps else steps
            y_steps = y_steps | RANGE_CHECK_SUMS if y_steps else y_steps
        if self.group is None:
            raw = self._accumulate(pair_op, pair_scales, steps, y_steps)
        else:
            what = f"wtraj: the pass over {self.x_source.n_checkpoints} checkpoints"
            raw, error = {}, None
            try:
                raw = self._accumulate(pair_op, pair_scales, steps, y_steps)
            except Exception as caught:
                error = caught
            self.group.agree(error, what)
            self.group.all_reduce(list(raw.values()), what)
        sums = self._sums(raw)
        if not self._input_finite(sums):
            return sums
        x_source, y_source = self.x_source, self.y_source
        wide_input = x_source.dtype == "float64"
        if pair_op in FLOAT32_TILE_OPS and not wide_input:
            symmetric = y_source is None
            x_rows, y_rows = rows_out_of_range(sums.pairs, symmetric, x_source.n_params)
            if x_rows.size:
                # the pairs of those rows again, from float64 copies: the float64
                # kernels' range holds every square and product of float32 values
                wide = Pass(
                    Float64Rows(x_source, x_rows), self.kernels,
                    y_source=None if symmetric else Float64Rows(y_source, y_rows),
                    by_layer=self.by_layer, memory_budget=self.budget, progress=self.progress,
                    check_finite=False, columns=self.columns, group=self.group,
                ).run(pair_op=pair_op)  # fmt: skip
                place = np.ix_(x_rows, x_rows if symmetric else y_rows)
                sums.pairs[place] = wide.pairs
                if self.by_layer:
                    sums.layer_pairs[(slice(None), *place)] = wide.layer_pairs
        if wide_input:
            check_float64_range(sums, pair_op, y_source is None, x_source)
        return sums

    def _accumulate(
        self, pair_op, pair_scales, steps: frozenset, y_steps: frozenset
    ) -> dict[str, np.ndarray]:
        """This process's sums over its columns, by name, with a leading layer axis (zeros if none)."""
        x_source, y_source = self.x_source, self.y_source
        n_slots = len(x_source.layers) if self.by_layer else 1
        n, m = x_source.n_checkpoints, (y_source.n_checkpoints if y_source else x_source.n_checkpoints)
        ops = _BlockOps(pair_op, pair_scales, steps, y_steps)
        shapes = ops.shapes(n_slots, n, m)
        width = self._width_for(ops)
        x_blocks = x_source.blocks(width, by_layer=self.by_layer, columns=self.columns)
        y_blocks = y_source.blocks(width, columns=self.columns) if y_source else None
        if pair_op and not self.by_layer:
            # float32 tile sums must group the same columns whatever the source
            # (the built-in sources are on the grid already: this only checks them)
            x_blocks = on_grid(x_blocks, x_source, width, self.columns)
            y_blocks = on_grid(y_blocks, y_source, width, self.columns) if y_source else None
        acc: dict[str, Any] = {}
        reading = sum(getattr(s, "reading_threads", 0) for s in (x_source, y_source) if s is not None)
        costs = [ColumnCost(s) for s in (x_source, y_source) if s is not None]
        columns = self.columns if self.columns is not None else all_columns(x_source.n_params)
        total = sum(cost.between(lo, hi) for cost in costs for lo, hi in columns)
        bar = progress_bar(total, self.progress, f"wtraj: {n} checkpoints")
        loading = None
        if isinstance(self.kernels, PendingBackend):
            # the kernels load (import, then Numba's disk cache) while the first blocks are read
            loading = ThreadPoolExecutor(1, thread_name_prefix="wtraj-kernels")
            loaded = loading.submit(_loaded_kernels, self.kernels, x_source, y_source, ops)
        try:
            with ExitStack() as threads:
                for x_block, y_block in paired_blocks(x_blocks, y_blocks):
                    slot = _slot(x_block, x_source, self.by_layer)
                    if not acc:
                        if loading is not None:
                            self.kernels = loaded.result()
                        threads.enter_context(_kernel_threads(self.kernels, reading))
                        # accumulators live where the data lives (the host, or the GPU for Triton)
                        acc = {
                            name: self.kernels.zeros(shape, x_block.data) for name, shape in shapes.items()
                        }
                    ops.add(self.kernels, x_block, y_block, acc, slot)
                    end = x_block.offset + x_block.width
                    bar.update(sum(cost.between(x_block.offset, end) for cost in costs))
        finally:
            bar.close()
            if loading is not None:
                # on an error or Ctrl-C too: no kernel call outlives the pass
                loading.shutdown(wait=True)
        if not acc:
            # no columns here (a rank with an empty share): zeros to add
            return {name: np.zeros(shape) for name, shape in shapes.items()}
        return {name: self.kernels.to_numpy(a) for name, a in acc.items()}

    def _sums(self, raw: dict[str, np.ndarray]) -> Sums:
        sums = Sums()
        if "pairs" in raw:
            layer_pairs = raw["pairs"]
            # without layers the one slot is the total (no copy of a matrix that may be
            # most of memory); with layers, the total is a matrix of its own
            sums.pairs = layer_pairs.sum(axis=0) if self.by_layer else layer_pairs[0]
            sums.layer_pairs = layer_pairs if self.by_layer else None
        if "steps" in raw:
            sums.steps = raw["steps"].sum(axis=0)
            sums.layer_steps = raw["steps"] if self.by_layer else None
        if "y_steps" in raw:
            sums.y_steps = raw["y_steps"]
        return sums

    def _input_finite(self, sums: Sums) -> bool:
        """Whether the input is finite, found through the sums it poisons; raise if not and asked to.

        Only when a sum is not finite are the sources scanned to name the
        first bad value (the lowest row, then the lowest column, over all
        ranks); a scan that finds none means finite values overflowed (the
        caller computes again).
        """
        results = [s for s in (sums.pairs, sums.steps, sums.y_steps) if s is not None]
        if all(all_finite(r) for r in results):
            return True
        for source in (self.x_source, self.y_source):
            if source is None:
                continue
            location = self._first_nonfinite(source)
            if location is not None:
                if not self.check_finite:
                    return False
                raise nonfinite_error(source, location)
        return True

    def _first_nonfinite(self, source: Source) -> Location | None:
        if self.group is None:
            return first_nonfinite(source, self.width, self.columns)
        what = "wtraj: the search for a NaN or Inf"
        location, error = None, None
        try:
            location = first_nonfinite(source, self.width, self.columns)
        except Exception as caught:
            error = caught
        self.group.agree(error, what)
        found = [loc for loc in self.group.gather(location, what) if loc is not None]
        return min(found) if found else None


@dataclass(frozen=True)
class _BlockOps:
    """The kernel calls a pass makes on each block."""

    pair_op: str | None
    pair_scales: tuple[np.ndarray, np.ndarray] | None
    # the path sums asked for (empty: none)
    steps: frozenset
    y_steps: frozenset

    def shapes(self, n_slots: int, n: int, m: int) -> dict[str, tuple[int, ...]]:
        """The accumulators the calls need, by name: ``n_slots`` tensors (or 1), N rows of X and M of Y."""
        shapes = {"pairs": (n_slots, n, m), "steps": (n_slots, N_PATH_SUMS, n), "y_steps": (N_PATH_SUMS, m)}
        wanted = {"pairs": bool(self.pair_op), "steps": bool(self.steps), "y_steps": bool(self.y_steps)}
        return {name: shape for name, shape in shapes.items() if wanted[name]}

    def add(self, kernels, x_block: Block, y_block: Block | None, acc: dict[str, Any], slot: int) -> None:
        """Add the block's terms to the accumulators ``acc`` (``slot``: its tensor's, or 0)."""
        if self.pair_op:
            y_data = None if y_block is None else y_block.data
            y_start = 0 if y_block is None else y_block.start
            y_stop = 0 if y_block is None else y_block.stop
            # X's path sums ride along, summed while each tile is in cache
            kernels.pairwise_block(
                x_block.data, x_block.start, x_block.stop, y_data, y_start, y_stop,
                self.pair_op, acc["pairs"][slot], self.pair_scales,
                acc["steps"][slot] if self.steps else None, self.steps or ALL_PATH_SUMS,
            )  # fmt: skip
        elif self.steps:
            kernels.steps_block(x_block.data, x_block.start, x_block.stop, acc["steps"][slot], self.steps)
        if self.y_steps:
            kernels.steps_block(y_block.data, y_block.start, y_block.stop, acc["y_steps"], self.y_steps)


def _loaded_kernels(backend: PendingBackend, x_source: Source, y_source: Source | None, ops: _BlockOps):
    """Import the backend and make its first calls, on blocks of zeros like the sources' blocks.

    A first call of a Numba kernel loads it from the disk cache (or compiles
    it); made here, it overlaps the reading of the first blocks. The calls
    are those of the pass, with the same argument types, so the pass finds
    every kernel loaded; their sums are thrown away. A first call that fails
    here leaves the loading to the pass, whose own call reports any error.
    """
    kernels = backend.load()
    try:
        x_zeros = _zero_block(x_source)
        y_zeros = None if y_source is None else _zero_block(y_source)
        n, m = x_source.n_checkpoints, (x_source if y_source is None else y_source).n_checkpoints
        acc = {name: kernels.zeros(shape, x_zeros.data) for name, shape in ops.shapes(1, n, m).items()}
        ops.add(kernels, x_zeros, y_zeros, acc, 0)
    except Exception:
        pass
    return kernels


# dtype of the blocks the CPU kernels get, by the source's dtype: float16 widened to
# float32 as it is read, bfloat16 as its bit patterns (wtraj._engine, as_source)
_BLOCK_DTYPES = {"float16": np.dtype(np.float32), "bfloat16": BFLOAT16_BITS}


def _zero_block(source: Source) -> Block:
    """A block of zeros of the smallest width, in the dtype the source's blocks hold."""
    dtype = _BLOCK_DTYPES[source.dtype] if source.dtype in _BLOCK_DTYPES else np.dtype(source.dtype)
    return Block(np.zeros((source.n_checkpoints, COLUMN_ALIGN), dtype=dtype), 0, COLUMN_ALIGN, 0, 0)


@contextmanager
def _kernel_threads(kernels, reading_threads: int) -> Iterator[None]:
    """Run the CPU kernels on the cores that the source's reading threads leave (at least one).

    The kernels split each block evenly among their threads: when a reading
    thread takes one of their cores, the whole block waits for that core. The
    sums do not depend on the number of threads (wtraj.kernels.numba._common).
    """
    if reading_threads == 0 or getattr(kernels, "__name__", "") != "wtraj.kernels.numba":
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, before - reading_threads))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _slot(block: Block, source: Source, by_layer: bool) -> int:
    if not by_layer:
        return 0
    if block.layer < 0:
        raise ValueError(
            f"by_layer=True needs blocks attributed to tensors, but {type(source).__name__} "
            "yielded a block that spans several."
        )
    return block.layer
