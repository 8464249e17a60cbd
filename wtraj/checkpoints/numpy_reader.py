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
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from wtraj.checkpoints.file_reads import FileIdentity, OpenFiles, open_identified, read_exactly
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


class StoredMemberValues:
    """The elements of an uncompressed ``.npz`` member, read in place and checked against its CRC.

    A pass reads each tensor front to back: the CRC of the member (its .npy
    header, then its elements) is carried from one read to the next and
    compared with the archive's record after the last, as NumPy's reader does.
    """

    def __init__(
        self, source: FileIdentity, info: zipfile.ZipInfo, data_offset: int, header_len: int, dtype: np.dtype
    ):
        self.source = source
        self.member = info.filename
        self.dtype = dtype
        self._offset = data_offset + header_len
        self._n_elements = (info.file_size - header_len) // dtype.itemsize
        self._crc = info.CRC
        self._header_crc = None
        self._header = (data_offset, header_len)
        self._next = 0
        self._running_crc = 0

    def read(self, files: OpenFiles, start: int, stop: int) -> np.ndarray:
        """Elements ``[start, stop)``.

        Raises
        ------
        ValueError
            If the file ends early, or after the last element the CRC does not match.
        """
        out = np.empty(stop - start, self.dtype)
        what = f"{self.source.path}: member {self.member!r}"
        with files.fd(self.source) as fd:
            if start == 0:
                if self._header_crc is None:
                    header = np.empty(self._header[1], np.uint8)
                    read_exactly(fd, header, self._header[0], what)
                    self._header_crc = zlib.crc32(header)
                self._next, self._running_crc = 0, self._header_crc
            read_exactly(fd, out, self._offset + start * self.dtype.itemsize, what)
        if start != self._next:
            # not a front-to-back read: the CRC cannot be carried on
            self._next = -1
            return out
        self._running_crc = zlib.crc32(out, self._running_crc)
        self._next = stop
        if stop == self._n_elements and self._running_crc != self._crc:
            raise ValueError(f"{what} is corrupted: its CRC does not match the archive's record.")
        return out


class DeflatedValues:
    """The elements of a compressed ``.npz`` member, decompressed as a forward stream.

    Reading at or after the last position read continues the stream; reading
    backwards restarts it (each pass reads a tensor front to back, so a pass
    decompresses each member once). Compressed bytes are read with pread
    through the pass's descriptors, and the CRC is checked once the whole
    member has been decompressed.
    """

    # compressed bytes read at once
    CHUNK = 1 << 20

    def __init__(
        self, source: FileIdentity, info: zipfile.ZipInfo, data_offset: int, header_len: int, dtype: np.dtype
    ):
        self.source = source
        self.member = info.filename
        self.dtype = dtype
        self._data_offset = data_offset
        self._compressed_size = info.compress_size
        self._size = info.file_size
        self._crc = info.CRC
        self._header_len = header_len
        self._restart()

    def read(self, files: OpenFiles, start: int, stop: int) -> np.ndarray:
        """Elements ``[start, stop)``.

        Raises
        ------
        ValueError
            If the member is corrupted, ends early, or its CRC does not match.
        """
        itemsize = self.dtype.itemsize
        try:
            if start * itemsize + self._header_len < self._done:
                self._restart()
            with files.fd(self.source) as fd:
                self._take(fd, self._header_len + start * itemsize - self._done)
                data = self._take(fd, (stop - start) * itemsize)
                if self._done == self._size:
                    self._finish()
        except (zlib.error, EOFError) as exc:
            self._restart()
            raise ValueError(f"{self.source.path}: member {self.member!r} is corrupted: {exc}") from exc
        return np.frombuffer(data, dtype=self.dtype)

    def _restart(self) -> None:
        # raw deflate: zip members carry no zlib header
        self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        self._read = 0
        self._done = 0
        self._running_crc = 0

    def _take(self, fd: int, n_bytes: int) -> bytearray:
        out = bytearray()
        while len(out) < n_bytes:
            tail = self._decompressor.unconsumed_tail
            if not tail:
                if self._decompressor.eof or self._read == self._compressed_size:
                    raise EOFError(
                        f"its data ended {n_bytes - len(out)} bytes before the {n_bytes} bytes expected"
                    )
                want = min(self.CHUNK, self._compressed_size - self._read)
                tail = _pread(fd, want, self._data_offset + self._read)
                self._read += len(tail)
            chunk = self._decompressor.decompress(tail, n_bytes - len(out))
            self._running_crc = zlib.crc32(chunk, self._running_crc)
            out += chunk
        self._done += len(out)
        return out

    def _finish(self) -> None:
        if self._running_crc != self._crc:
            raise EOFError("its CRC does not match the archive's record")


def _pread(fd: int, n_bytes: int, offset: int) -> bytes:
    data = b""
    while len(data) < n_bytes:
        chunk = os.pread(fd, n_bytes - len(data), offset + len(data))
        if not chunk:
            raise EOFError(f"the file ended {n_bytes - len(data)} bytes early (truncated while being read?)")
        data += chunk
    return data
