"""A set of checkpoints on disk as a column-block source."""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import numpy as np

from wtraj._blocks import COLUMN_ALIGN, Block, Columns, Layer, block_spans, widest_span
from wtraj._dtypes import BFLOAT16_BITS, itemsize
from wtraj.checkpoints.file_reads import OpenFiles, read_exactly
from wtraj.checkpoints.prefetch import prefetched
from wtraj.checkpoints.readahead import advise_willneed, readahead_blocks, with_lookahead
from wtraj.checkpoints.row_runs import RowRuns
from wtraj.checkpoints.stored import StoredTensor, copy_widened

# rows of a block read at once (WTRAJ_READ_THREADS overrides): two reads in flight were
# faster than one in exploratory runs, and no worse in the benchmark (bench/RESULTS.md)
DEFAULT_READ_THREADS = 2


class Checkpoints:
    """``n_checkpoints`` checkpoints read from disk, one block of columns at a time.

    Satisfies :class:`wtraj._blocks.Source`; made by :func:`wtraj.open`. The
    rows are the checkpoints, the columns their floating-point tensors
    flattened in C order and concatenated in the order of :attr:`layers`.
    Nothing is read until :meth:`blocks` is iterated; each pass reads every
    file once.

    Attributes
    ----------
    n_checkpoints, n_params : int
    names : list of str
        One label per checkpoint: its file or folder name.
    layers : list of Layer
        ``(name, shape, offset)`` of each tensor, in the order of the columns.
    dtype : str
        dtype of the blocks handed out: ``"float64"`` if any tensor is stored
        as float64; ``"bfloat16"`` if every tensor is, handed out as their bit
        patterns (:data:`wtraj._dtypes.BFLOAT16_BITS`), which the CPU kernels
        widen as they load them; else ``"float32"`` (half precision is
        widened as it is read).
    stored_dtypes : set of str
        dtypes the tensors are stored in.
    skipped : dict of str to str
        Tensors left out (not floating point, or empty) -> their stored dtype.
    memory_budget : int or None
        Bytes the block buffers of a pass may take in all, when the call
        running the pass gives no budget of its own (None: the default).
    check_finite : bool
        Whether computations on this source should refuse NaN and Inf.
    buffer_bytes_per_column : int
        Bytes the block buffers take per column of block width: two buffers
        in flight (one read by the caller, one being filled), plus one
        staging row per checkpoint for values that need widening.
    stored_bytes_per_column : list of int
        Per tensor, bytes read from disk per column over all checkpoints.
    """

    device = "cpu"

    def __init__(
        self,
        names: list[str],
        layers: list[Layer],
        tensors: list[list[StoredTensor]],
        skipped: dict[str, str],
        memory_budget: int | None = None,
        check_finite: bool = True,
    ):
        self.names = names
        self.layers = layers
        self._tensors = tensors
        self.skipped = skipped
        self.memory_budget = memory_budget
        self.check_finite = bool(check_finite)
        self.n_checkpoints = len(names)
        self.n_params = sum(layer.size for layer in layers)
        self.stored_dtypes = {t.dtype for row in tensors for t in row}
        if "float64" in self.stored_dtypes:
            self.dtype = "float64"
        elif self.stored_dtypes == {"bfloat16"}:
            self.dtype = "bfloat16"
        else:
            self.dtype = "float32"
        self._buffer_dtype = BFLOAT16_BITS if self.dtype == "bfloat16" else np.dtype(self.dtype)
        self._offsets = [layer.offset for layer in layers]
        self._runs: list[RowRuns] | None = None
        self.buffer_bytes_per_column = self.n_checkpoints * (
            2 * self._buffer_dtype.itemsize + self._staging_itemsize()
        )
        self.stored_bytes_per_column = [
            sum(itemsize(row[k].dtype) for row in tensors) for k in range(len(layers))
        ]

    @property
    def reading_threads(self) -> int:
        """Threads reading the blocks of a pass (:func:`read_threads`): a pass leaves them a core each."""
        return read_threads()

    def rows_between(self, lo: int, hi: int) -> Checkpoints:
        """Checkpoints ``lo`` to ``hi - 1`` as a set of their own, handing out blocks of the same dtype.

        A pass over it reads only those checkpoints' files (a split of the
        pairs among ranks, :mod:`wtraj._pair_tiles`).
        """
        part = Checkpoints(
            self.names[lo:hi], self.layers, self._tensors[lo:hi], self.skipped,
            self.memory_budget, self.check_finite,
        )  # fmt: skip
        # blocks paired with other rows' must hold the same values
        part.dtype, part._buffer_dtype = self.dtype, self._buffer_dtype
        part.buffer_bytes_per_column = part.n_checkpoints * (
            2 * part._buffer_dtype.itemsize + part._staging_itemsize()
        )
        return part

    @property
    def nbytes(self) -> int:
        """Bytes one pass reads from disk."""
        return sum(t.size * itemsize(t.dtype) for row in self._tensors for t in row)

    def __repr__(self) -> str:
        return (
            f"Checkpoints({self.n_checkpoints} checkpoints x {self.n_params:,} parameters in "
            f"{len(self.layers)} tensors, stored as {'/'.join(sorted(self.stored_dtypes))}, "
            f"first {self.names[0]!r})"
        )

    def blocks(
        self, max_width: int, by_layer: bool = False, columns: Columns | None = None
    ) -> Iterator[Block]:
        """Yield every column (or those of ``columns``), block by block, read on background threads.

        Blocks start at multiples of ``COLUMN_ALIGN`` columns (from the start
        of each range of ``columns``) and span tensor boundaries, as an
        in-memory array's blocks do, so every kernel tiles the same columns
        and results equal the array's; with ``by_layer`` a block instead never
        spans two tensors (``Block.layer`` is the index of its tensor in
        :attr:`layers`) and tensors wider than a block are cut at multiples
        of ``COLUMN_ALIGN``. ``Block.data`` is a C-contiguous
        ``(n_checkpoints, width)`` buffer of :attr:`dtype` whose columns
        ``[0, stop)`` hold the block; it is reused once the next block is
        requested, so use it before asking for the next. The next block is
        read while the caller works on this one, each checkpoint's tensors
        stored back to back with one read (:mod:`~wtraj.checkpoints.row_runs`),
        and the blocks after it are asked of the page cache ahead
        (:mod:`~wtraj.checkpoints.readahead`); only the bytes of the columns
        asked for are read.

        Parameters
        ----------
        max_width : int
            Most columns per block, rounded down to a multiple of
            ``COLUMN_ALIGN`` (at least one such multiple). The buffers then
            take ``max_width * buffer_bytes_per_column`` bytes:
            :class:`wtraj._pass.Pass` picks it from the memory budget.
        by_layer : bool
            Cut blocks at tensor boundaries, for results per tensor.
        columns : tuple of (lo, hi), optional
            Read only these sorted, disjoint ranges of flattened columns.
        """
        width = max(COLUMN_ALIGN, int(max_width) // COLUMN_ALIGN * COLUMN_ALIGN)
        width = widest_span(self.layers, self.n_params, width, by_layer, columns)
        if width == 0:
            return
        # spans made lazily on the reading thread: the number of blocks grows with n_params
        spans = block_spans(self.layers, self.n_params, width, by_layer, columns)
        staging = np.empty((self.n_checkpoints, width * self._staging_itemsize()), dtype=np.uint8)
        files = OpenFiles()
        pool = ThreadPoolExecutor(read_threads(), thread_name_prefix="wtraj-read")
        rows = self._row_runs()

        def read_row(buffer: np.ndarray, offset: int, span: int, i: int) -> None:
            end = offset + span
            for run in rows[i].between(offset, end):
                lo, hi = max(offset, run.start), min(end, run.stop)
                out = buffer[i, lo - offset : hi - offset]
                if run.raw:
                    # the tensors of the run lie back to back: one read for all their columns here
                    with files.fd(self._tensors[i][run.first].source) as fd:
                        read_exactly(fd, out, run.file_offset + (lo - run.start) * out.itemsize, run.what)
                else:
                    self._read_tensor(out, staging[i], files, i, run.first, lo - run.start, hi - run.start)

        def advise(span: tuple[int, int, int]) -> None:
            offset, columns_here, _ = span
            for i, row in enumerate(rows):
                for run in row.between(offset, offset + columns_here):
                    tensor = self._tensors[i][run.first]
                    if tensor.file_offset is None:
                        continue
                    lo, hi = max(offset, run.start), min(offset + columns_here, run.stop)
                    size = tensor.storage.itemsize
                    with files.fd(tensor.source) as fd:
                        advise_willneed(fd, run.file_offset + (lo - run.start) * size, (hi - lo) * size)

        def fill(buffer: np.ndarray, task: tuple[tuple[int, int, int], list]) -> None:
            (offset, columns_here, _), ahead = task
            for span in ahead:
                advise(span)
            for _ in pool.map(lambda i: read_row(buffer, offset, columns_here, i), range(self.n_checkpoints)):
                pass

        def new_buffer() -> np.ndarray:
            return np.empty((self.n_checkpoints, width), dtype=self._buffer_dtype)

        try:
            # closing() stops the reader thread before the pool and files go away
            ahead = readahead_blocks(self.n_checkpoints * width * self._buffer_dtype.itemsize)
            with closing(prefetched(with_lookahead(spans, ahead), new_buffer, fill)) as filled:
                for ((offset, span, layer), _), buffer in filled:
                    yield Block(buffer, 0, span, offset, layer)
            pool.shutdown(wait=True)
            # every value was read: a file that changed meanwhile makes the pass fail
            files.close(check=True)
        finally:
            pool.shutdown(wait=True)
            files.close()

    def describe(self, row: int, column: int) -> str:
        """Where element ``(row, column)`` lies: checkpoint, file, tensor and index in it."""
        k = bisect.bisect_right(self._offsets, column) - 1
        layer = self.layers[k]
        tensor = self._tensors[row][k]
        index = tuple(int(i) for i in np.unravel_index(column - layer.offset, layer.shape))
        return (
            f"checkpoint {row} ({self.names[row]!r}), tensor {layer.name!r} at index "
            f"{index} (file {str(tensor.file)!r}, key {tensor.key!r})"
        )

    def _staging_itemsize(self) -> int:
        """Bytes per element of the staging rows that raw reads needing conversion land in."""
        staged = [
            t.storage.itemsize
            for row in self._tensors
            for t in row
            if t.file_offset is not None and t.storage != self._buffer_dtype
        ]
        return max(staged, default=0)

    def _row_runs(self) -> list[RowRuns]:
        """Each checkpoint's runs of tensors read together (made once, on the first pass)."""
        if self._runs is None:
            self._runs = [RowRuns(row, self.layers, self._buffer_dtype) for row in self._tensors]
        return self._runs

    def _read_tensor(
        self,
        out: np.ndarray,
        staging: np.ndarray,
        files: OpenFiles,
        i: int,
        k: int,
        start: int,
        stop: int,
    ) -> None:
        """Columns ``[start, stop)`` of tensor ``k`` of checkpoint ``i`` into ``out``, converted as needed."""
        tensor = self._tensors[i][k]
        out = out[: stop - start]
        stored = tensor.storage
        if isinstance(tensor.values, np.ndarray):
            copy_widened(out, tensor.values[start:stop], tensor.dtype)
            return
        if tensor.file_offset is None:
            copy_widened(out, tensor.values.read(files, start, stop), tensor.dtype)
            return
        offset = tensor.file_offset + start * stored.itemsize
        what = f"{tensor.file}: tensor {tensor.key!r}"
        with files.fd(tensor.source) as fd:
            raw = staging[: (stop - start) * stored.itemsize].view(stored)
            read_exactly(fd, raw, offset, what)
        copy_widened(out, raw, tensor.dtype)


def read_threads() -> int:
    """Threads reading the rows of a block: ``WTRAJ_READ_THREADS`` or 2."""
    value = os.environ.get("WTRAJ_READ_THREADS", str(DEFAULT_READ_THREADS))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WTRAJ_READ_THREADS must be a positive integer; got {value!r}.")
    return int(value)
