"""Where a zip member's bytes start, found as ``zipfile`` finds them, with the same checks."""

from __future__ import annotations

import struct
import zipfile
from typing import BinaryIO

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def member_data_offset(f: BinaryIO, info: zipfile.ZipInfo, file_size: int) -> int:
    """Byte offset of the first byte of ``info``'s (possibly compressed) data in the archive ``f``.

    Raises
    ------
    ValueError
        If the member's local header is missing or damaged (wrong signature,
        another name than the central directory's), or its data would end
        past the end of the file; the message names the member, not the file.
    """
    if info.header_offset < 0 or info.header_offset + _LOCAL_HEADER.size > file_size:
        raise ValueError(f"member {info.filename!r}: its local header lies outside the file")
    f.seek(info.header_offset)
    fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
    flags, name_len, extra_len = fields[3], fields[-2], fields[-1]
    name = f.read(name_len).decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
    if fields[0] != b"PK\x03\x04" or name != info.orig_filename:
        raise ValueError(f"member {info.filename!r}: corrupted zip local header")
    start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    if start + info.compress_size > file_size:
        raise ValueError(
            f"member {info.filename!r}: truncated or corrupted: its {info.compress_size} bytes would "
            f"end at byte {start + info.compress_size} of a {file_size}-byte file"
        )
    return start
