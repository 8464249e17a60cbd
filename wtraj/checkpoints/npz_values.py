"""The values of an ``.npz`` member, read as a pass asks for them and checked against the zip's CRC."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from wtraj.checkpoints.file_reads import FileIdentity, OpenFiles, read_exactly


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
