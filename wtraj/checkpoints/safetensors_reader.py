"""Read ``.safetensors`` files lazily: parse and check the header, locate each tensor's bytes.

The format is an 8-byte little-endian header length, a JSON header mapping
each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the end of the header), then the raw little-endian data.
The header is parsed here rather than through the ``safetensors`` package so
that values can be read in place (bfloat16 as raw ``uint16`` bits) and never
all at once. It is held to the rules the ``safetensors`` package enforces: a
header of at most 100 MB, no duplicate keys, and tensors that tile the data
region exactly, in order from byte 0, each as long as its shape says; so a
truncated file or a header that lies fails with a clear error, never a crash
and never a tensor read twice.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from wtraj.checkpoints.file_reads import open_identified
from wtraj.checkpoints.stored import StoredTensor, check_shape, short_repr
from wtraj.checkpoints.strict_json import parse_json_object

# the safetensors package refuses headers above 100 MB too
MAX_HEADER_BYTES = 100_000_000

# safetensors dtype code -> (canonical name, NumPy dtype used to hold the stored bits)
SAFETENSORS_DTYPES = {
    "F64": ("float64", np.dtype("<f8")),
    "F32": ("float32", np.dtype("<f4")),
    "F16": ("float16", np.dtype("<f2")),
    "BF16": ("bfloat16", np.dtype("<u2")),
    "F8_E4M3": ("float8_e4m3fn", np.dtype("u1")),
    "F8_E5M2": ("float8_e5m2", np.dtype("u1")),
    "I64": ("int64", np.dtype("<i8")),
    "I32": ("int32", np.dtype("<i4")),
    "I16": ("int16", np.dtype("<i2")),
    "I8": ("int8", np.dtype("i1")),
    "U64": ("uint64", np.dtype("<u8")),
    "U32": ("uint32", np.dtype("<u4")),
    "U16": ("uint16", np.dtype("<u2")),
    "U8": ("uint8", np.dtype("u1")),
    "BOOL": ("bool", np.dtype("?")),
}


def read_safetensors(path: Path) -> dict[str, StoredTensor]:
    """The tensors of one ``.safetensors`` file, in the order their data lie in the file.

    Raises
    ------
    ValueError
        If the file is too short, the header is not valid JSON, an entry is
        malformed, or an entry's size or offsets disagree with its shape, with
        the other entries or with the file size; the message names the file
        and the tensor.
    """
    f, source = open_identified(path)
    with f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(
                f"{path}: not a safetensors file (only {source.size} bytes; the header length alone takes 8)."
            )
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES or 8 + header_len > source.size:
            limit = f" (headers are limited to {MAX_HEADER_BYTES})" if header_len > MAX_HEADER_BYTES else ""
            raise ValueError(
                f"{path}: corrupted or truncated safetensors file: the header claims "
                f"{header_len} bytes{limit} but the file has {source.size}."
            )
        raw_header = f.read(header_len)
    header = parse_json_object(path, raw_header, "the safetensors header")
    metadata = header.pop("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise ValueError(f"{path}: corrupted safetensors header: __metadata__ must map strings to strings.")

    data_start = 8 + header_len
    entries = sorted((_check_entry(path, key, entry) for key, entry in header.items()), key=lambda e: e[3])
    del header
    data_len = source.size - data_start
    tensors = {}
    data_end = 0
    for key, dtype_code, shape, (begin, end) in entries:
        if end > data_len:
            raise ValueError(
                f"{path}: tensor {key!r}: truncated or corrupted file: the tensor's data ends at byte "
                f"{end} of the data region but the file holds only {data_len} bytes of data."
            )
        if begin != data_end:
            raise ValueError(
                f"{path}: tensor {key!r}: corrupted header: its data starts at byte {begin} of the data "
                f"region, but the tensor before it ends at byte {data_end} (tensors must follow each "
                "other without gap or overlap)."
            )
        data_end = end
        name, storage = SAFETENSORS_DTYPES[dtype_code]
        tensors[key] = StoredTensor(
            key=key,
            shape=shape,
            dtype=name,
            source=source,
            storage=storage,
            file_offset=data_start + begin,
        )
    if data_end != data_len:
        raise ValueError(
            f"{path}: corrupted file: the tensors' data ends at byte {data_end} of the data region "
            f"but the file holds {data_len} bytes of data after the header."
        )
    return tensors


def _check_entry(path: Path, key: str, entry: object) -> tuple[str, str, tuple[int, ...], tuple[int, int]]:
    where = f"{path}: tensor {key!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise ValueError(
            f"{where}: corrupted header entry (expected dtype, shape and data_offsets; "
            f"got {short_repr(entry)})."
        )
    dtype_code, offsets = entry["dtype"], entry["data_offsets"]
    if not isinstance(dtype_code, str) or dtype_code not in SAFETENSORS_DTYPES:
        raise ValueError(f"{where}: unknown safetensors dtype {short_repr(dtype_code)}.")
    shape = check_shape(where, entry["shape"])
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(o) is int for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise ValueError(
            f"{where}: corrupted header: data_offsets must be [begin, end], got {short_repr(offsets)}."
        )
    begin, end = offsets
    expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype_code][1].itemsize
    if end - begin != expected:
        raise ValueError(
            f"{where}: the header lies about its size: shape {shape} of {dtype_code} needs "
            f"{expected} bytes but data_offsets {offsets} span {end - begin}."
        )
    return key, dtype_code, shape, (begin, end)
