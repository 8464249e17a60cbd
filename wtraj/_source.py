"""In-memory inputs as column-block sources, and :func:`as_source`, which wraps anything the API takes.

The types they share with checkpoint sources (:class:`~wtraj._blocks.Block`,
:class:`~wtraj._blocks.Source`) live in the leaf module :mod:`wtraj._blocks`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from wtraj._blocks import (
    CACHE_BLOCK_BYTES,
    COLUMN_ALIGN,
    VIEW_BLOCK_BYTES,
    Block,
    Columns,
    Layer,
    Source,
    block_spans,
    bytes_block_width,
    widest_span,
)
from wtraj._dtypes import (
    BFLOAT16_BITS,
    FLOAT_DTYPE_NAMES,
    dtype_name,
    is_torch_tensor,
    itemsize,
    torch_bfloat16_bits,
)


def _widen_buffer(n_rows: int, width: int, like: Any) -> Any:
    if is_torch_tensor(like):
        import torch

        return torch.empty((n_rows, width), dtype=torch.float32, device=like.device)
    return np.empty((n_rows, width), dtype=np.float32)


class ArraySource:
    """An in-memory or memory-mapped 2-D array (NumPy or torch) as a source.

    C-contiguous float32/float64 arrays are handed out as views. When
    ``widen_half`` is set (the CPU kernels; Triton reads half precision
    natively), bfloat16 tensors are handed out as views of their bit patterns,
    which the CPU kernels widen as they load them, and float16 rows are
    widened block by block into one reused float32 buffer. Arrays whose last
    axis is not contiguous are copied block by block into a reused buffer of
    their own dtype.
    """

    check_finite = True
    memory_budget = None

    def __init__(self, data: Any, name: str = "X", widen_half: bool = True):
        self.label = name
        self.n_checkpoints, self.n_params = (int(s) for s in data.shape)
        self.dtype = dtype_name(data)
        self.device = data.device.type if is_torch_tensor(data) else "cpu"
        self.names = [f"{name}[{i}]" for i in range(self.n_checkpoints)]
        self.layers = [Layer(name, (self.n_params,), 0)]
        self.data = _as_bits(data) if widen_half and self.dtype == "bfloat16" else data
        self._widen = widen_half and self.dtype == "float16"
        self._in_place = not self._widen and _rows_contiguous(self.data)
        self.stored_bytes_per_column = (self.n_checkpoints * itemsize(self.dtype),)
        buffer_itemsize = 0 if self._in_place else (4 if self._widen else itemsize(self.dtype))
        self.buffer_bytes_per_column = self.n_checkpoints * buffer_itemsize

    def describe(self, row: int, column: int) -> str:
        return f"{self.label} row {row}, column {column}"

    def rows_between(self, lo: int, hi: int) -> ArraySource:
        """Rows ``lo`` to ``hi - 1`` as a source of their own (a view: nothing is copied)."""
        part = _rows_part(self, lo, hi)
        part.data = self.data[lo:hi]
        return part

    def blocks(
        self, max_width: int, by_layer: bool = False, columns: Columns | None = None
    ) -> Iterator[Block]:
        # one layer: every block lies within it, by_layer or not
        if self.device == "cuda":
            # one launch per range of columns: the GPU kernels split D themselves
            max_width = self.n_params
        else:
            # a copy is read twice; data read in place once per kernel (the pass narrows
            # its blocks where two kernels read each)
            block_bytes = VIEW_BLOCK_BYTES if self._in_place else CACHE_BLOCK_BYTES
            max_width = min(
                max_width, bytes_block_width(block_bytes, self.n_checkpoints, itemsize(self.dtype))
            )
        width = _block_width(self.n_params, max_width)
        spans = block_spans(self.layers, self.n_params, width, False, columns)
        if self._in_place:
            for start, span, _ in spans:
                yield Block(self.data, start, start + span, start, layer=0)
            return
        buffer = None
        for start, span, _ in spans:
            if buffer is None:
                buffer_width = widest_span(self.layers, self.n_params, width, False, columns)
                buffer = (
                    _widen_buffer(self.n_checkpoints, buffer_width, self.data)
                    if self._widen
                    else empty_rows_like(self.data, self.n_checkpoints, buffer_width)
                )
            copy_columns(buffer, self.data[:, start : start + span])
            yield Block(buffer, 0, span, start, layer=0)


class RowsSource:
    """A list of 1-D arrays or tensors (one per checkpoint) as a source.

    Each block copies the same columns of every row into one reused buffer;
    when ``widen_half`` is set, float16 is widened to float32 and bfloat16 is
    copied as its bit patterns (as :class:`ArraySource` does).
    """

    check_finite = True
    memory_budget = None

    def __init__(self, rows: Sequence[Any], name: str = "X", widen_half: bool = True):
        self.label = name
        self.n_checkpoints = len(rows)
        self.n_params = int(rows[0].shape[0])
        self.dtype = dtype_name(rows[0])
        self.device = rows[0].device.type if is_torch_tensor(rows[0]) else "cpu"
        self.names = [f"{name}[{i}]" for i in range(self.n_checkpoints)]
        self.layers = [Layer(name, (self.n_params,), 0)]
        bits = widen_half and self.dtype == "bfloat16"
        self.rows = [_as_bits(row) for row in rows] if bits else list(rows)
        self._widen = widen_half and self.dtype == "float16"
        self.stored_bytes_per_column = (self.n_checkpoints * itemsize(self.dtype),)
        self.buffer_bytes_per_column = self.n_checkpoints * (4 if self._widen else itemsize(self.dtype))

    def describe(self, row: int, column: int) -> str:
        return f"{self.label}[{row}], element {column}"

    def rows_between(self, lo: int, hi: int) -> RowsSource:
        """Rows ``lo`` to ``hi - 1`` as a source of their own."""
        part = _rows_part(self, lo, hi)
        part.rows = self.rows[lo:hi]
        return part

    def blocks(
        self, max_width: int, by_layer: bool = False, columns: Columns | None = None
    ) -> Iterator[Block]:
        # one layer: every block lies within it, by_layer or not
        # each block is copied, then read: it should still be in the cache
        max_width = min(
            max_width, bytes_block_width(CACHE_BLOCK_BYTES, self.n_checkpoints, itemsize(self.dtype))
        )
        width = _block_width(self.n_params, max_width)
        buffer_width = widest_span(self.layers, self.n_params, width, False, columns)
        if buffer_width == 0:
            return
        first = self.rows[0]
        buffer = (
            _widen_buffer(self.n_checkpoints, buffer_width, first)
            if self._widen
            else empty_rows_like(first, self.n_checkpoints, buffer_width)
        )
        for start, span, _ in block_spans(self.layers, self.n_params, width, False, columns):
            for i, row in enumerate(self.rows):
                copy_columns(buffer[i : i + 1], row[None, start : start + span])
            yield Block(buffer, 0, span, start, layer=0)


def _rows_part(source: ArraySource | RowsSource, lo: int, hi: int) -> ArraySource | RowsSource:
    """A shallow copy of an in-memory source with its row count, names and bytes per column for rows lo..hi-1.

    The caller cuts the values themselves (an array's rows, or the list of rows).
    """
    part = copy.copy(source)
    part.n_checkpoints = hi - lo
    part.names = source.names[lo:hi]
    part.stored_bytes_per_column = (part.n_checkpoints * itemsize(source.dtype),)
    part.buffer_bytes_per_column = source.buffer_bytes_per_column // source.n_checkpoints * part.n_checkpoints
    return part


def _as_bits(data: Any) -> Any:
    """bfloat16 data as the CPU kernels read it: a view of its bit patterns (CUDA data stays)."""
    if isinstance(data, np.ndarray):
        # NumPy arrays of ml_dtypes.bfloat16
        return data.view(BFLOAT16_BITS)
    if data.device.type == "cpu":
        return torch_bfloat16_bits(data)
    return data


def _rows_contiguous(data: Any) -> bool:
    stride = data.stride()[-1] if is_torch_tensor(data) else data.strides[-1] // data.itemsize
    return data.shape[-1] <= 1 or stride == 1


def empty_rows_like(data: Any, n_rows: int, width: int) -> Any:
    """An uninitialised (n_rows, width) buffer of ``data``'s dtype, device and array type."""
    if is_torch_tensor(data):
        import torch

        return torch.empty((n_rows, width), dtype=data.dtype, device=data.device)
    return np.empty((n_rows, width), dtype=data.dtype)


def copy_columns(buffer: Any, columns: Any) -> None:
    width = columns.shape[1]
    if is_torch_tensor(buffer):
        buffer[:, :width].copy_(columns)
    else:
        np.copyto(buffer[:, :width], columns, casting="same_kind")


def _block_width(n_params: int, max_width: int) -> int:
    """Columns per block: at most ``max_width``, aligned, and not wider than the data."""
    width = max(COLUMN_ALIGN, (max_width // COLUMN_ALIGN) * COLUMN_ALIGN)
    return max(1, min(width, n_params))


def is_source(X: Any) -> bool:
    """Whether ``X`` is a :class:`Source`.

    Arrays and tensors, the usual input, never are: they are ruled out first,
    since the protocol's own check looks at every member (30 us a call,
    twice per pass: a third of a small call's overhead).
    """
    return not isinstance(X, np.ndarray) and not is_torch_tensor(X) and isinstance(X, Source)


def as_source(X: Any, name: str = "X", widen_half: bool = True) -> Source:
    """Turn anything the API accepts into a :class:`Source`.

    Accepts a :class:`Source` (returned as is), a 2-D NumPy array or memmap, a
    2-D torch tensor, a sequence of 1-D arrays or tensors, or a path / sequence
    of paths to checkpoints (read with :func:`wtraj.open`).
    """
    if is_source(X):
        return X
    import os

    if isinstance(X, (str, os.PathLike)) or (
        isinstance(X, (list, tuple)) and X and all(isinstance(p, (str, os.PathLike)) for p in X)
    ):
        from wtraj.checkpoints import open as open_checkpoints

        # the pass that reads them owns the memory budget: none is fixed here
        return open_checkpoints(X)
    if isinstance(X, (list, tuple)):
        return _rows_source([_without_grad(row) for row in X], name, widen_half)
    if not (isinstance(X, np.ndarray) or is_torch_tensor(X)):
        raise TypeError(
            f"{name} must be a 2-D NumPy array, a torch tensor, a list of 1-D arrays, a path "
            f"or a wtraj checkpoint set; got {type(X).__name__}."
        )
    X = _without_grad(X)
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_checkpoints, n_params). (Shape was {tuple(X.shape)}.)"
        )
    _check_float(X, name)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(X.shape)}): it needs at least one checkpoint and one parameter."
        )
    return ArraySource(X, name, widen_half)


def _without_grad(data: Any) -> Any:
    """A tensor that requires grad, as its values only: wtraj reads weights, it never differentiates."""
    if is_torch_tensor(data) and data.requires_grad:
        return data.detach()
    return data


def _rows_source(rows: Sequence[Any], name: str, widen_half: bool) -> RowsSource:
    if len(rows) == 0:
        raise ValueError(f"{name} is an empty list: it needs at least one checkpoint.")
    for i, row in enumerate(rows):
        if not (isinstance(row, np.ndarray) or is_torch_tensor(row)):
            raise TypeError(f"{name}[{i}] must be a 1-D array or tensor; got {type(row).__name__}.")
        if row.ndim != 1:
            raise ValueError(
                f"{name}[{i}] must be 1-D (a flattened checkpoint). (Shape was {tuple(row.shape)}.)"
            )
        _check_float(row, f"{name}[{i}]")
    first = rows[0]
    for i, row in enumerate(rows[1:], start=1):
        if row.shape != first.shape:
            raise ValueError(
                f"{name}[{i}] has {row.shape[0]} parameters but {name}[0] has {first.shape[0]}: "
                "every checkpoint must have the same number of parameters."
            )
        if dtype_name(row) != dtype_name(first):
            raise TypeError(f"{name}[{i}] is {dtype_name(row)} but {name}[0] is {dtype_name(first)}.")
        if is_torch_tensor(row) != is_torch_tensor(first) or (
            is_torch_tensor(row) and row.device != first.device
        ):
            raise TypeError(f"{name}[{i}] is not on the same device / array type as {name}[0].")
    if first.shape[0] == 0:
        raise ValueError(f"{name} has rows of zero parameters.")
    return RowsSource(rows, name, widen_half)


def _check_float(X: Any, name: str) -> None:
    dtype = dtype_name(X)
    if dtype not in FLOAT_DTYPE_NAMES:
        raise TypeError(
            f"{name} must hold floating-point values (float16, bfloat16, float32 or float64); "
            f"got dtype {dtype}."
        )
