"""One tensor as it lies in a checkpoint file, and how its values reach a block buffer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wtraj._dtypes import BFLOAT16_BITS, FLOAT_DTYPE_NAMES, bfloat16_bits_to_float32
from wtraj.checkpoints.file_reads import FileIdentity

# shapes, element counts and offsets must fit a signed 64-bit integer (NumPy's index type)
MAX_DIMENSION = 1 << 63


@dataclass(frozen=True, slots=True)
class StoredTensor:
    """A tensor of one checkpoint, not yet read.

    Its elements lie either as raw C-order bytes at ``file_offset`` of the file
    (safetensors, .npy, stored .npz members, torch storages), read with pread,
    or come from ``values``: an in-memory array, or a reader with
    ``read(files, start, stop)`` (a compressed .npz member). bfloat16 elements
    are held as their raw ``uint16`` bits, since NumPy has no bfloat16.
    """

    # the key in the file, before any prefix was stripped
    key: str
    shape: tuple[int, ...]
    # canonical name of the stored dtype: "float32", "bfloat16", "int64", ...
    dtype: str
    source: FileIdentity
    # NumPy dtype of the stored elements as they lie in the file (byte order included);
    # None for the dtypes NumPy cannot hold, which are never read
    storage: np.dtype | None
    file_offset: int | None = None
    values: Any = None

    @property
    def file(self) -> Path:
        return self.source.path

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPE_NAMES


def check_shape(where: str, shape: object) -> tuple[int, ...]:
    """``shape`` as a tuple if it is a list or tuple of integers in ``[0, 2**63)``.

    Raises
    ------
    ValueError
        Naming ``where`` (the file and tensor) and the shape found.
    """
    if not (
        isinstance(shape, (list, tuple))
        and all(type(s) is int and 0 <= s < MAX_DIMENSION for s in shape)
        and math.prod(shape) < MAX_DIMENSION
    ):
        raise ValueError(
            f"{where}: corrupted header: the shape must be a list of non-negative integers whose "
            f"product is below 2**63, got {short_repr(shape)}."
        )
    return tuple(shape)


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 120 characters (header values can be huge)."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


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
