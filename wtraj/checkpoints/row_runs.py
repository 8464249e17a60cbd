"""Where one checkpoint's columns lie: runs of tensors stored back to back, each read with one pread.

A safetensors file stores its tensors one after another; when the columns
follow the same order, a block's columns of that checkpoint are one range of
bytes, whatever the number of tensors in it. A pass reads each run's part of
a block with a single read, so its cost per block does not grow with the
number of tensors.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from wtraj._blocks import Layer
from wtraj.checkpoints.stored import StoredTensor


@dataclass(frozen=True, slots=True)
class Run:
    """Flattened columns ``[start, stop)`` of one checkpoint: tensors ``first`` to ``last`` of it.

    With ``raw``, the tensors lie back to back in one file, stored in the
    block buffer's dtype, from ``file_offset`` on; otherwise the run is one
    tensor that needs converting or its own reader.
    """

    start: int
    stop: int
    first: int
    last: int
    raw: bool
    file_offset: int
    # names the file and tensors in a read error
    what: str


class RowRuns:
    """The runs of one checkpoint, in column order, found by column in O(log n_runs)."""

    def __init__(self, tensors: Sequence[StoredTensor], layers: Sequence[Layer], buffer_dtype: np.dtype):
        self.runs: list[Run] = []
        first = 0
        for k in range(len(tensors)):
            if k + 1 < len(tensors) and _read_on(tensors[k], tensors[k + 1], buffer_dtype):
                continue
            self.runs.append(_run(tensors, layers, first, k, buffer_dtype))
            first = k + 1
        self._starts = [run.start for run in self.runs]

    def between(self, lo: int, hi: int) -> Iterator[Run]:
        """The runs that hold columns of ``[lo, hi)``, in order."""
        j = max(0, bisect.bisect_right(self._starts, lo) - 1)
        while j < len(self.runs) and self.runs[j].start < hi:
            yield self.runs[j]
            j += 1


def _raw(tensor: StoredTensor, buffer_dtype: np.dtype) -> bool:
    """Whether the tensor's values are read straight from its file into the buffer."""
    return tensor.values is None and tensor.file_offset is not None and tensor.storage == buffer_dtype


def _read_on(tensor: StoredTensor, after: StoredTensor, buffer_dtype: np.dtype) -> bool:
    """Whether one read covers both: both raw, ``after`` starting where ``tensor``'s bytes end."""
    return (
        _raw(tensor, buffer_dtype)
        and _raw(after, buffer_dtype)
        and after.source == tensor.source
        and after.file_offset == tensor.file_offset + tensor.size * buffer_dtype.itemsize
    )


def _run(
    tensors: Sequence[StoredTensor], layers: Sequence[Layer], first: int, last: int, buffer_dtype: np.dtype
) -> Run:
    head, tail = tensors[first], tensors[last]
    keys = f"tensor {head.key!r}" if first == last else f"tensors {head.key!r} to {tail.key!r}"
    return Run(
        start=layers[first].offset,
        stop=layers[last].offset + layers[last].size,
        first=first,
        last=last,
        raw=_raw(head, buffer_dtype),
        file_offset=head.file_offset if head.file_offset is not None else -1,
        what=f"{head.file}: {keys}",
    )
