"""Dtype names shared by NumPy and torch inputs, without importing torch."""

from __future__ import annotations

import sys
from typing import Any

FLOAT_DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")


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
