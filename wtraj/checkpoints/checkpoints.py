"""A set of checkpoints on disk as a column-block source."""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import numpy as np

from wtraj._source import COLUMN_ALIGN, Block, Layer
from wtraj.checkpoints.file_reads import OpenFiles, read_exactly
from wtraj.checkpoints.prefetch import prefetched
from wtraj.checkpoints.progress import progress_bar
from wtraj.checkpoints.stored import StoredTensor, copy_widened

# rows of a block read at once (WTRAJ_READ_THREADS overrides): two reads in flight were
# faster than one in exploratory runs, and no worse in the benchmark (bench/RESULTS.md)
DEFAULT_READ_THREADS = 2
# stored bytes per element, for sizing reads and the progress bar
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


class Checkpoints:
    """``n_checkpoints`` checkpoints read from disk, one block of columns at a time.

    Satisfies :class:`wtraj._source.Source`; made by :func:`wtraj.open`. The
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
        as float64, else ``"float32"`` (half precision is widened per block).
    stored_dtypes : set of str
        dtypes the tensors are stored in.
    skipped : dict of str to str
        Tensors left out (not floating point, or empty) -> their stored dtype.
    memory_budget : int
        Bytes the block buffers may take in all.
    check_finite : bool
        Whether computations on this source should refuse NaN and Inf.
    """

    device = "cpu"

    def __init__(
        self,
        names: list[str],
        layers: list[Layer],
        tensors: list[list[StoredTensor]],
        skipped: dict[str, str],
        memory_budget: int,
        check_finite: bool = True,
    ):
        self.names = names
        self.layers = layers
        self._tensors = tensors
        self.skipped = skipped
        self.memory_budget = int(memory_budget)
        self.check_finite = bool(check_finite)
        self.n_checkpoints = len(names)
        self.n_params = sum(layer.size for layer in layers)
        self.stored_dtypes = {t.dtype for row in tensors for t in row}
        self.dtype = "float64" if "float64" in self.stored_dtypes else "float32"
        self._offsets = [layer.offset for layer in layers]

    @property
    def nbytes(self) -> int:
        """Bytes one pass reads from disk."""
        return sum(t.size * _ITEMSIZE[t.dtype] for row in self._tensors for t in row)

    def __repr__(self) -> str:
        return (
            f"Checkpoints({self.n_checkpoints} checkpoints x {self.n_params:,} parameters in "
            f"{len(self.layers)} tensors, stored as {'/'.join(sorted(self.stored_dtypes))}, "
            f"first {self.names[0]!r})"
        )

    def block_width(self, max_width: int) -> int:
        """Columns per block buffer: at most ``max_width`` and within the memory budget.

        Two buffers are in flight (one read by the caller, one being filled),
        plus one staging row per checkpoint for values that need widening.
        """
        bytes_per_column = self.n_checkpoints * (2 * np.dtype(self.dtype).itemsize + self._staging_itemsize())
        width = min(int(max_width), self.memory_budget // bytes_per_column)
        width = max(COLUMN_ALIGN, width // COLUMN_ALIGN * COLUMN_ALIGN)
        return min(width, max(layer.size for layer in self.layers))

    def blocks(self, max_width: int, progress: bool | None = False) -> Iterator[Block]:
        """Yield the columns of every tensor, block by block, read on background threads.

        A block never spans two tensors: ``Block.layer`` is the index of its
        tensor in :attr:`layers`, and tensors wider than a block are cut at
        multiples of ``COLUMN_ALIGN`` columns. ``Block.data`` is a C-contiguous
        ``(n_checkpoints, width)`` buffer of :attr:`dtype` whose columns
        ``[0, stop)`` hold the block; it is reused once the next block is
        requested, so use it before asking for the next. The next block is
        read while the caller works on this one. Blocks are as wide as allowed
        (long reads keep the disk busy); cache-sized pieces of the buffer were
        no faster in ``trajectory_stats`` (bench/RESULTS.md).

        Parameters
        ----------
        max_width : int
            Most columns per block.
        progress : bool or None
            Show a progress bar of the bytes read. Off by default, since the
            wtraj functions draw their own; None shows one on a terminal for
            passes of a GiB or more.
        """
        width = self.block_width(max_width)
        tasks = [
            (k, start, min(start + width, layer.size))
            for k, layer in enumerate(self.layers)
            for start in range(0, layer.size, width)
        ]
        bytes_per_column = [
            sum(_ITEMSIZE[row[k].dtype] for row in self._tensors) for k in range(len(self.layers))
        ]
        staging = np.empty((self.n_checkpoints, width * self._staging_itemsize()), dtype=np.uint8)
        files = OpenFiles()
        pool = ThreadPoolExecutor(read_threads(), thread_name_prefix="wtraj-read")

        def fill(buffer: np.ndarray, task: tuple[int, int, int]) -> None:
            k, start, stop = task
            rows = range(self.n_checkpoints)
            for _ in pool.map(
                lambda i: self._read_row(buffer[i], staging[i], files, i, k, start, stop), rows
            ):
                pass

        def new_buffer() -> np.ndarray:
            return np.empty((self.n_checkpoints, width), dtype=self.dtype)

        bar = progress_bar(self.nbytes, progress, f"reading {self.n_checkpoints} checkpoints")
        try:
            # closing() stops the reader thread before the pool and files go away
            with closing(prefetched(tasks, new_buffer, fill)) as filled:
                for (k, start, stop), buffer in filled:
                    yield Block(buffer, 0, stop - start, self.layers[k].offset + start, k)
                    bar.update((stop - start) * bytes_per_column[k])
        finally:
            pool.shutdown(wait=True)
            files.close()
            bar.close()

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
            t.values.dtype.itemsize
            for row in self._tensors
            for t in row
            if t.file_offset is not None and t.values.dtype != self.dtype
        ]
        return max(staged, default=0)

    def _read_row(
        self,
        out: np.ndarray,
        staging: np.ndarray,
        files: OpenFiles,
        i: int,
        k: int,
        start: int,
        stop: int,
    ) -> None:
        """Columns ``[start, stop)`` of tensor ``k`` of checkpoint ``i`` into ``out``."""
        tensor = self._tensors[i][k]
        out = out[: stop - start]
        stored = tensor.values.dtype
        if tensor.file_offset is None:
            copy_widened(out, tensor.values[start:stop], tensor.dtype)
            return
        fd = files.fd(tensor.file)
        offset = tensor.file_offset + start * stored.itemsize
        what = f"{tensor.file}: tensor {tensor.key!r}"
        if stored == out.dtype:
            read_exactly(fd, out, offset, what)
            return
        raw = staging[: (stop - start) * stored.itemsize].view(stored)
        read_exactly(fd, raw, offset, what)
        copy_widened(out, raw, tensor.dtype)


def read_threads() -> int:
    """Threads reading the rows of a block: ``WTRAJ_READ_THREADS`` or 2."""
    value = os.environ.get("WTRAJ_READ_THREADS", str(DEFAULT_READ_THREADS))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WTRAJ_READ_THREADS must be a positive integer; got {value!r}.")
    return int(value)
