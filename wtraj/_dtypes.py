"""Dtype names shared by NumPy and torch inputs, without importing torch."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

FLOAT_DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")

# NumPy has no bfloat16. On the host, a block of bfloat16 values is a NumPy array
# of their bit patterns in this dtype: the CPU kernels widen each value as they
# load it, so half the bytes cross memory and nothing is copied to float32 first.
BFLOAT16_BITS = np.dtype(np.uint16)


def is_torch_tensor(x: Any) -> bool:
    """True for a torch tensor; never imports torch (it may not be installed)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def dtype_name(x: Any) -> str:
    """Canonical name of an array's or tensor's dtype: ``"float32"``, ``"bfloat16"``, ``"int64"``…"""
    if is_torch_tensor(x):
        return str(x.dtype).removeprefix("torch.")
    return str(x.dtype)


def itemsize(name: str) -> int:
    """Bytes per value of a float dtype named as by :func:`dtype_name`."""
    return {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[name]


def bfloat16_bits_to_float32(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The float32 values of bfloat16 bit patterns (:data:`BFLOAT16_BITS`); exact.

    A bfloat16 is the upper half of a float32, so shifting its bits up 16
    places gives the same number. ``out``, a float32 array of the same shape,
    receives them in place of a new array.
    """
    wide = None if out is None else out.view(np.uint32)
    return np.left_shift(bits, np.uint32(16), out=wide, dtype=np.uint32).view(np.float32)


def torch_bfloat16_bits(tensor: Any) -> np.ndarray:
    """A NumPy view of a CPU bfloat16 tensor's bit patterns (:data:`BFLOAT16_BITS`), not a copy."""
    import torch

    return tensor.detach().view(torch.int16).numpy().view(BFLOAT16_BITS)


def host_floats(columns: Any) -> Any:
    """Block columns with bfloat16 bit patterns turned into their float32 values.

    Anything else (float NumPy arrays, torch tensors) is returned as is.
    """
    if isinstance(columns, np.ndarray) and columns.dtype == BFLOAT16_BITS:
        return bfloat16_bits_to_float32(columns)
    return columns
