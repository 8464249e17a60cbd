"""A set of checkpoints on disk as a column-block source."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import numpy as np

from wtraj._source import COLUMN_ALIGN, Block, Layer
from wtraj.checkpoints.prefetch import prefetched
from wtraj.checkpoints.progress import progress_bar
from wtraj.checkpoints.stored import StoredTensor, copy_widened

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
        so each may take half of :attr:`memory_budget`.
        """
        itemsize = np.dtype(self.dtype).itemsize
        budget_width = self.memory_budget // (2 * self.n_checkpoints * itemsize)
        width = min(int(max_width), budget_width)
        width = max(COLUMN_ALIGN, width // COLUMN_ALIGN * COLUMN_ALIGN)
        return min(width, max(layer.size for layer in self.layers))

    def blocks(self, max_width: int, progress: bool | None = None) -> Iterator[Block]:
        """Yield the columns of every tensor, block by block, read on a background thread.

        A block never spans two tensors: ``Block.layer`` is the index of its
        tensor in :attr:`layers`, and tensors wider than a block are cut at
        multiples of ``COLUMN_ALIGN`` columns. ``Block.data`` is a C-contiguous
        ``(n_checkpoints, width)`` buffer of :attr:`dtype` whose columns
        ``[0, stop)`` hold the block; it is reused once the next block is
        requested, so use it before asking for the next.

        Parameters
        ----------
        max_width : int
            Most columns per block.
        progress : bool or None
            Show a progress bar: None shows one on a terminal for passes of a
            GiB or more.
        """
        width = self.block_width(max_width)
        tasks = [
            (k, start, min(start + width, layer.size))
            for k, layer in enumerate(self.layers)
            for start in range(0, layer.size, width)
        ]
        bar = progress_bar(self.nbytes, progress, f"reading {self.n_checkpoints} checkpoints")
        bytes_per_column = [sum(_ITEMSIZE[row[k].dtype] for row in self._tensors) for k in range(len(self.layers))]
        try:
            for (k, start, stop), buffer in prefetched(tasks, self._new_buffer(width), self._fill):
                yield Block(buffer, 0, stop - start, self.layers[k].offset + start, k)
                bar.update((stop - start) * bytes_per_column[k])
        finally:
            bar.close()

    def describe(self, row: int, column: int) -> str:
        """Where element ``(row, column)`` lies: checkpoint, file, tensor and index in the tensor."""
        k = bisect.bisect_right(self._offsets, column) - 1
        layer = self.layers[k]
        tensor = self._tensors[row][k]
        index = tuple(int(i) for i in np.unravel_index(column - layer.offset, layer.shape))
        return (
            f"checkpoint {row} ({self.names[row]!r}), tensor {layer.name!r} at index "
            f"{index} (file {str(tensor.file)!r}, key {tensor.key!r})"
        )

    def _new_buffer(self, width: int):
        def make() -> np.ndarray:
            return np.empty((self.n_checkpoints, width), dtype=self.dtype)

        return make

    def _fill(self, buffer: np.ndarray, task: tuple[int, int, int]) -> None:
        k, start, stop = task
        for i, row in enumerate(self._tensors):
            tensor = row[k]
            try:
                copy_widened(buffer[i, : stop - start], tensor.values[start:stop], tensor.dtype)
            except OSError as exc:
                raise OSError(f"{tensor.file}: reading tensor {tensor.key!r} failed: {exc}") from exc
