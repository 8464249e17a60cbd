"""Read ``.npy`` and ``.npz`` checkpoints: parse and check each array's header, locate its bytes.

An ``.npy`` file holds one tensor, named ``"array"``. An ``.npz`` archive holds
one tensor per member. The values of an ``.npy`` file and of members stored
uncompressed (``np.savez``) are read in place (the members' CRCs checked as
a pass reads them); members of ``np.savez_compressed`` are decompressed as a forward stream, one block after
the other, so they too are never held whole in memory. Every size a header
claims is checked against the bytes the file (or zip member) holds before
anything is planned from it.
"""

from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from wtraj.checkpoints.file_reads import FileIdentity, open_identified
from wtraj.checkpoints.npz_values import DeflatedValues, StoredMemberValues
from wtraj.checkpoints.stored import StoredTensor, check_shape
from wtraj.checkpoints.zip_members import member_data_offset

# name of the single tensor of an .npy checkpoint
NPY_TENSOR_NAME = "array"
NPY_VERSIONS = ((1, 0), (2, 0), (3, 0))
# deflate expands at most ~1032-fold (a 258-byte match per 2-bit code)
DEFLATE_MAX_RATIO = 1032
# what zipfile raises on a damaged archive or member
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    ValueError,
)
# what NumPy's .npy header parser raises on damaged text: it evaluates the header as a
# Python literal (ast, and tokenize for Python 2 headers), so syntax errors reach us too
_NPY_HEADER_ERRORS = (
    ValueError,
    SyntaxError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
    EOFError,
    tokenize.TokenError,
)


def read_npy(path: Path) -> dict[str, StoredTensor]:
    """The single tensor of an ``.npy`` file, checked against the file size."""
    f, source = open_identified(path)
    with f:
        try:
            shape, fortran, dtype = _read_npy_header(f)
        except _NPY_HEADER_ERRORS as exc:
            raise ValueError(f"{path}: not a readable .npy file (truncated or corrupted?): {exc}") from exc
        data_start = f.tell()
    shape = check_shape(f"{path}: {NPY_TENSOR_NAME!r}", shape)
    _check_layout(path, NPY_TENSOR_NAME, dtype, len(shape), fortran)
    nbytes = math.prod(shape) * dtype.itemsize
    if data_start + nbytes > source.size:
        raise ValueError(
            f"{path}: truncated or corrupted .npy file: shape {shape} of {dtype} needs {nbytes} bytes "
            f"after the header but the file holds {source.size - data_start}."
        )
    return {NPY_TENSOR_NAME: _stored(source, NPY_TENSOR_NAME, shape, dtype, file_offset=data_start)}


def read_npz(path: Path) -> dict[str, StoredTensor]:
    """The tensors of an ``.npz`` archive, in member order."""
    f, source = open_identified(path)
    with f:
        try:
            archive = zipfile.ZipFile(f)
        except _ZIP_ERRORS as exc:
            raise ValueError(f"{path}: not a readable .npz archive (truncated or corrupted?): {exc}") from exc
        with archive:
            tensors = {}
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name in tensors or name == info.filename:
                    raise ValueError(
                        f"{path}: member {info.filename!r} is "
                        f"{'repeated' if name in tensors else 'not an .npy array'} "
                        "(an .npz archive holds one .npy member per array)."
                    )
                tensors[name] = _member(path, source, f, archive, info, name)
    if not tensors:
        raise ValueError(f"{path}: the .npz archive is empty.")
    return tensors


def _member(
    path: Path, source: FileIdentity, f: BinaryIO, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str
) -> StoredTensor:
    where = f"{path}: member {info.filename!r}"
    if info.flag_bits & 0x1:
        raise ValueError(f"{where} is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(
            f"{where} uses zip compression method {info.compress_type}; wtraj reads stored "
            "and deflated members (what np.savez and np.savez_compressed write)."
        )
    if (
        info.compress_type == zipfile.ZIP_DEFLATED
        and info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024
    ):
        raise ValueError(
            f"{where}: corrupted: it claims {info.file_size} bytes from {info.compress_size} compressed "
            "bytes, more than deflate can expand to."
        )
    try:
        data_offset = member_data_offset(f, info, source.size)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}.") from exc
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            f.seek(data_offset)
            shape, fortran, dtype = _read_npy_header(f)
            header_len = f.tell() - data_offset
        else:
            with archive.open(info) as member:
                shape, fortran, dtype = _read_npy_header(member)
                header_len = member.tell()
    except _NPY_HEADER_ERRORS + _ZIP_ERRORS as exc:
        raise ValueError(f"{where} is not a valid .npy array (corrupted?): {exc}") from exc
    shape = check_shape(where, shape)
    _check_layout(path, name, dtype, len(shape), fortran)
    nbytes = math.prod(shape) * dtype.itemsize
    # the member's size is known before anything is read: a header claiming more values
    # than the member holds (a zip bomb, or a corrupted shape) fails here
    if header_len + nbytes != info.file_size or (
        info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size
    ):
        raise ValueError(
            f"{where}: truncated or corrupted: shape {shape} of {dtype} needs {nbytes} bytes after "
            f"its {header_len}-byte header, but the member holds {info.file_size} bytes in all."
        )
    if info.compress_type == zipfile.ZIP_STORED:
        values = StoredMemberValues(source, info, data_offset, header_len, dtype)
    else:
        values = DeflatedValues(source, info, data_offset, header_len, dtype)
    return _stored(source, name, shape, dtype, values=values)


def _read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version not in NPY_VERSIONS:
        raise ValueError(f"unknown .npy format version {version}")
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _check_layout(path: Path, name: str, dtype: np.dtype, ndim: int, fortran: bool) -> None:
    if dtype.hasobject:
        raise ValueError(f"{path}: {name!r} holds Python objects; wtraj never unpickles them.")
    if fortran and ndim > 1:
        raise ValueError(
            f"{path}: {name!r} is stored in Fortran order, which cannot be read in C order "
            "column by column; save it with np.ascontiguousarray."
        )


def _stored(
    source: FileIdentity, name: str, shape: tuple[int, ...], dtype: np.dtype, file_offset=None, values=None
) -> StoredTensor:
    return StoredTensor(
        key=name,
        shape=shape,
        dtype=dtype.name,
        source=source,
        storage=dtype,
        file_offset=file_offset,
        values=values,
    )
