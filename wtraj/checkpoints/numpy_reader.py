"""Read ``.npy`` and ``.npz`` checkpoints as memory maps.

An ``.npy`` file holds one tensor, named ``"array"``. An ``.npz`` archive holds
one tensor per member. Members stored uncompressed (``np.savez``) are memory
mapped at their offset inside the zip; members of ``np.savez_compressed``
cannot be mapped and are decompressed as a forward stream, one block after
the other, so they too are never held whole in memory.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from wtraj.checkpoints.stored import StoredTensor

# name of the single tensor of an .npy checkpoint
NPY_TENSOR_NAME = "array"
_ZIP_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def read_npy(path: Path) -> dict[str, StoredTensor]:
    """The single tensor of an ``.npy`` file, memory-mapped."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy file (truncated or corrupted?): {exc}") from exc
    _check_layout(path, NPY_TENSOR_NAME, array.dtype, array.ndim, np.isfortran(array))
    values = array.reshape(-1)
    return {NPY_TENSOR_NAME: _stored(path, NPY_TENSOR_NAME, array.shape, array.dtype, values, array.offset)}


def read_npz(path: Path) -> dict[str, StoredTensor]:
    """The tensors of an ``.npz`` archive, in member order."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive (truncated or corrupted?): {exc}") from exc
    tensors = {}
    with archive, path.open("rb") as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type == zipfile.ZIP_STORED:
                tensors[name] = _mapped_member(path, raw, info, name)
            else:
                tensors[name] = _streamed_member(path, archive, info, name)
    if not tensors:
        raise ValueError(f"{path}: the .npz archive is empty.")
    return tensors


def _mapped_member(path: Path, raw, info: zipfile.ZipInfo, name: str) -> StoredTensor:
    raw.seek(info.header_offset)
    fields = _ZIP_LOCAL_HEADER.unpack(raw.read(_ZIP_LOCAL_HEADER.size))
    if fields[0] != b"PK\x03\x04":
        raise ValueError(f"{path}: member {name!r}: corrupted zip local header.")
    name_len, extra_len = fields[-2], fields[-1]
    member_start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_len + extra_len
    raw.seek(member_start)
    shape, fortran, dtype = _read_npy_header(path, name, raw)
    _check_layout(path, name, dtype, len(shape), fortran)
    array_start = raw.tell()
    size = int(np.prod(shape, dtype=np.int64))
    if array_start - member_start + size * dtype.itemsize > info.file_size:
        raise ValueError(
            f"{path}: member {name!r}: truncated or corrupted: shape {shape} of {dtype} needs "
            f"{size * dtype.itemsize} bytes but the member holds fewer."
        )
    values = (
        np.memmap(path, dtype=dtype, mode="r", offset=array_start, shape=(size,))
        if size
        else np.empty(0, dtype)
    )
    return _stored(path, name, shape, dtype, values, array_start)


def _streamed_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> StoredTensor:
    try:
        with archive.open(info) as member:
            shape, fortran, dtype = _read_npy_header(path, name, member)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValueError(f"{path}: member {name!r} is corrupted: {exc}") from exc
    _check_layout(path, name, dtype, len(shape), fortran)
    size = int(np.prod(shape, dtype=np.int64))
    return _stored(path, name, shape, dtype, DeflatedValues(path, info.filename, dtype, size))


def _read_npy_header(path: Path, name: str, f) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        return np.lib.format.read_array_header_2_0(f)
    except ValueError as exc:
        raise ValueError(f"{path}: member {name!r} is not a valid .npy array: {exc}") from exc


def _check_layout(path: Path, name: str, dtype: np.dtype, ndim: int, fortran: bool) -> None:
    if dtype.hasobject:
        raise ValueError(f"{path}: {name!r} holds Python objects; wtraj never unpickles them.")
    if fortran and ndim > 1:
        raise ValueError(
            f"{path}: {name!r} is stored in Fortran order, which cannot be read in C order "
            "column by column; save it with np.ascontiguousarray."
        )


def _stored(
    path: Path, name: str, shape, dtype: np.dtype, values, file_offset: int | None = None
) -> StoredTensor:
    return StoredTensor(
        key=name,
        shape=tuple(shape),
        dtype=dtype.name,
        file=path,
        values=values,
        file_offset=file_offset,
    )


class DeflatedValues:
    """The elements of a compressed ``.npz`` member, decompressed as a forward stream.

    Slicing at or after the last position read continues the stream; slicing
    backwards restarts it (each pass reads a tensor front to back, so a pass
    decompresses each member once).
    """

    def __init__(self, path: Path, member: str, dtype: np.dtype, size: int):
        self.path = path
        self.member = member
        self.dtype = dtype
        self.shape = (size,)
        self._stream = None
        self._position = 0

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(self.shape[0])
        if step != 1:
            raise ValueError("DeflatedValues supports contiguous slices only.")
        try:
            if self._stream is None or start < self._position:
                self._open()
            self._skip(start - self._position)
            data = self._read_exactly((stop - start) * self.dtype.itemsize)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            self.close()
            raise ValueError(f"{self.path}: member {self.member!r} is corrupted: {exc}") from exc
        self._position = stop
        if stop == self.shape[0]:
            self.close()
        return np.frombuffer(data, dtype=self.dtype)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._archive.close()
        self._stream = None
        self._position = 0

    def _open(self) -> None:
        self.close()
        self._archive = zipfile.ZipFile(self.path)
        self._stream = self._archive.open(self.member)
        _read_npy_header(self.path, self.member, self._stream)

    def _skip(self, n_elements: int) -> None:
        remaining = n_elements * self.dtype.itemsize
        while remaining:
            remaining -= len(self._read_exactly(min(remaining, 1 << 24)))

    def _read_exactly(self, n_bytes: int) -> bytes:
        data = self._stream.read(n_bytes)
        if len(data) != n_bytes:
            raise EOFError(f"expected {n_bytes} more bytes, got {len(data)}")
        return data
