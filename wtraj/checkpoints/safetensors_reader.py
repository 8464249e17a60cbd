"""Read ``.safetensors`` files lazily: parse the header, memory-map the data.

The format is an 8-byte little-endian header length, a JSON header mapping
each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(offsets relative to the end of the header), then the raw little-endian data.
The header is parsed here rather than through the ``safetensors`` package so
that the data region can be memory-mapped with NumPy and bfloat16 read as raw
``uint16`` bits; every entry is checked against the file size first, so a file
that is truncated or whose header lies fails with a clear error, never a crash.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from wtraj.checkpoints.stored import StoredTensor

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
        malformed, or an entry's size or offsets disagree with its shape or
        with the file size; the message names the file and the tensor.
    """
    file_size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(
                f"{path}: not a safetensors file (only {file_size} bytes; the header length alone takes 8)."
            )
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES or 8 + header_len > file_size:
            raise ValueError(
                f"{path}: corrupted or truncated safetensors file: the header claims "
                f"{header_len} bytes but the file has {file_size}."
            )
        raw_header = f.read(header_len)
    try:
        header = json.loads(raw_header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path}: corrupted safetensors file: the header is not valid JSON ({exc})."
        ) from exc
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupted safetensors file: the header is not a JSON object.")
    header.pop("__metadata__", None)

    data_start = 8 + header_len
    data_len = file_size - data_start
    entries = [(_check_entry(path, key, entry, data_len), key) for key, entry in header.items()]
    entries.sort(key=lambda item: item[0][2][0])
    # one read-only map of the data region; each tensor is a view of it
    data = (
        np.memmap(path, dtype=np.uint8, mode="r", offset=data_start, shape=(data_len,))
        if data_len > 0
        else np.empty(0, dtype=np.uint8)
    )
    tensors = {}
    for (dtype_code, shape, (begin, end)), key in entries:
        name, storage = SAFETENSORS_DTYPES[dtype_code]
        tensors[key] = StoredTensor(
            key=key,
            shape=shape,
            dtype=name,
            file=path,
            values=data[begin:end].view(storage),
            file_offset=data_start + begin,
        )
    return tensors


def _check_entry(
    path: Path, key: str, entry: object, data_len: int
) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    where = f"{path}: tensor {key!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise ValueError(
            f"{where}: corrupted header entry (expected dtype, shape and data_offsets; got {entry!r})."
        )
    dtype_code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype_code not in SAFETENSORS_DTYPES:
        raise ValueError(f"{where}: unknown safetensors dtype {dtype_code!r}.")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise ValueError(
            f"{where}: corrupted header: shape must be a list of non-negative integers, got {shape!r}."
        )
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise ValueError(f"{where}: corrupted header: data_offsets must be [begin, end], got {offsets!r}.")
    begin, end = offsets
    itemsize = SAFETENSORS_DTYPES[dtype_code][1].itemsize
    expected = int(np.prod(shape, dtype=np.int64)) * itemsize
    if end - begin != expected:
        raise ValueError(
            f"{where}: the header lies about its size: shape {tuple(shape)} of {dtype_code} needs "
            f"{expected} bytes but data_offsets {offsets} span {end - begin}."
        )
    if end > data_len:
        raise ValueError(
            f"{where}: truncated or corrupted file: the tensor's data ends at byte {end} of "
            f"the data region but the file holds only {data_len} bytes of data."
        )
    return dtype_code, tuple(shape), (begin, end)
