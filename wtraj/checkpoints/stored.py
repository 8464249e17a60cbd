"""One tensor as it lies in a checkpoint file, and how its values reach a block buffer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wtraj._dtypes import BFLOAT16_BITS, FLOAT_DTYPE_NAMES, bfloat16_bits_to_float32


@dataclass(frozen=True)
class StoredTensor:
    """A tensor of one checkpoint, not yet read.

    ``values`` is a 1-D sliceable view of the stored elements in C order
    (a memory map, a slice of one, or a streaming reader) with a ``dtype``:
    slicing it reads only that range. bfloat16 values are held as their raw
    ``uint16`` bits, since NumPy has no bfloat16.
    """

    # the key in the file, before any prefix was stripped
    key: str
    shape: tuple[int, ...]
    # canonical name of the stored dtype: "float32", "bfloat16", "int64", ...
    dtype: str
    file: Path
    values: Any
    # byte offset of the first element in ``file`` when the values lie there as raw
    # C-order bytes (safetensors, .npy, stored .npz): they are then read with pread
    file_offset: int | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPE_NAMES


def copy_widened(out: np.ndarray, stored: np.ndarray, dtype: str) -> None:
    """Write ``stored`` (a slice of a :class:`StoredTensor`'s values) into ``out``.

    Parameters
    ----------
    out : ndarray, shape (width,)
        One row of a block buffer: float32, float64, or bfloat16 bits
        (:data:`wtraj._dtypes.BFLOAT16_BITS`) when every tensor is bfloat16.
    stored : ndarray, shape (width,)
        Stored elements; ``uint16`` bit patterns when ``dtype`` is ``"bfloat16"``.
    dtype : str
        Canonical name of the stored dtype.
    """
    if dtype != "bfloat16" or out.dtype == BFLOAT16_BITS:
        np.copyto(out, stored, casting="same_kind")
    elif out.dtype == np.float32:
        bfloat16_bits_to_float32(stored, out)
    else:
        np.copyto(out, bfloat16_bits_to_float32(stored))
