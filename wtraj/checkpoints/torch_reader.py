"""Read PyTorch ``state_dict`` files (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) without running code.

The pickle is loaded with ``torch.load(weights_only=True, map_location="meta")``:
the restricted unpickler refuses anything but tensors and plain containers, so
a malicious pickle cannot execute, and the meta device reads no values, only
each storage's offset in the zip archive (torch stores the ``data/<key>``
records uncompressed). Values are then read in place with pread like every
other format's: a memory map would fault (SIGBUS) if the file were truncated
while in use.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from wtraj.checkpoints.file_reads import FileIdentity, open_identified, read_exactly
from wtraj.checkpoints.stored import StoredTensor
from wtraj.checkpoints.zip_members import member_data_offset

# keys under which training scripts nest the model's state_dict, tried in this order
# (Lightning's .ckpt uses "state_dict")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
# zip flags of encrypted (0x1, 0x40) and patched (0x20) data, and the DOS attribute of a folder
UNSUPPORTED_ZIP_FLAGS = 0x1 | 0x20 | 0x40
DOS_DIRECTORY_ATTRIBUTE = 0x10
# floating dtypes -> NumPy dtype of their stored bits (bfloat16 as raw uint16 bits)
STORAGE_DTYPES = {
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}


def read_torch(path: Path) -> dict[str, StoredTensor]:
    """The tensors of one PyTorch checkpoint file, in the state_dict's order.

    Nested wrappers (``{"state_dict": ...}``, ``{"model": ...}``, a Lightning
    ``.ckpt``) are unwrapped; nested dicts of tensors are flattened with dots.

    Raises
    ------
    ValueError
        If the file is not a readable PyTorch checkpoint (truncated, corrupted,
        legacy non-zip format, or a pickle that needs more than tensors), holds
        no tensors, a sparse tensor, or two tensors whose flattened names collide.
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"{path}: reading PyTorch checkpoints needs torch (pip install torch).") from exc
    f, source = open_identified(path)
    with f:
        records = _storage_records(path, f, source.size)
        f.seek(0)
        try:
            loaded = torch.load(f, map_location="meta", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ValueError(
                f"{path}: refused to load: the pickle needs more than tensors and plain containers, "
                "and wtraj never runs code from a checkpoint (torch.load weights_only=True). "
                "Save the model's state_dict() alone, or convert the file to safetensors. "
                f"(torch said: {_unpickler_reason(exc)})"
            ) from exc
        except Exception as exc:
            # torch.load raises many types on damaged archives and pickles (RuntimeError,
            # AssertionError, KeyError, struct.error, ...): each means the file is unreadable
            raise ValueError(
                f"{path}: not a readable PyTorch checkpoint (truncated or corrupted): "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        tensors: dict[str, StoredTensor] = {}
        for key, tensor in _flattened(_unwrap(loaded), path, torch):
            tensors[key] = _stored(tensor, key, source, records, f, torch)
    if not tensors:
        raise ValueError(f"{path}: holds no tensors (found {type(loaded).__name__}).")
    return tensors


def _storage_records(path: Path, f, file_size: int) -> dict[int, tuple[int, str]]:
    """Offset of each storage record's data in the file -> (its size in bytes, byte order)."""
    try:
        archive = zipfile.ZipFile(f)
        with archive:
            infos = archive.infolist()
            order = next(
                (archive.read(i) for i in infos if i.filename.endswith("/byteorder") and i.file_size < 16),
                b"little",
            )
            records = {}
            for info in infos:
                if "/data/" not in info.filename or info.filename.endswith("/"):
                    continue
                # what torch's reader (miniz) refuses or reads as a directory (no bytes)
                if (
                    info.compress_type != zipfile.ZIP_STORED
                    or info.compress_size != info.file_size
                    or info.flag_bits & UNSUPPORTED_ZIP_FLAGS
                ):
                    raise ValueError(f"storage record {info.filename!r} is compressed or encrypted")
                if info.external_attr & DOS_DIRECTORY_ATTRIBUTE:
                    raise ValueError(f"storage record {info.filename!r} is marked as a directory")
                offset = member_data_offset(f, info, file_size)
                records[offset] = (info.file_size, ">" if order == b"big" else "<")
    except zipfile.BadZipFile as exc:
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint (truncated, corrupted, or saved in the "
            "legacy non-zip format of torch < 1.6, which wtraj cannot read in place; load and "
            f"save it again with torch.save): {exc}"
        ) from exc
    except (
        ValueError,
        OSError,
        EOFError,
        RuntimeError,
        struct.error,
        zipfile.LargeZipFile,
        NotImplementedError,
    ) as exc:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint (corrupted): {exc}") from exc
    return records


def _unwrap(loaded: Any) -> Any:
    while isinstance(loaded, dict):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(loaded.get(k), dict)), None)
        if wrapper is None:
            return loaded
        loaded = loaded[wrapper]
    return loaded


def _flattened(state: Any, path: Path, torch: Any) -> list[tuple[str, Any]]:
    """``(dotted name, tensor)`` of every tensor in nested dicts, in order; names must be unique."""
    found: dict[str, Any] = {}
    # an explicit stack: a pickle may nest dicts deeper than Python's recursion limit
    stack = [("", state)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, torch.Tensor):
            key = prefix.removesuffix(".")
            if key in found:
                raise ValueError(
                    f"{path}: two tensors are both named {key!r} once nested dicts are flattened "
                    "with dots; rename one so that no tensor is lost."
                )
            found[key] = node
        elif isinstance(node, dict):
            stack.extend((f"{prefix}{k}.", v) for k, v in reversed(list(node.items())))
    return list(found.items())


def _stored(
    tensor: Any, key: str, source: FileIdentity, records: dict[int, tuple[int, str]], f, torch: Any
) -> StoredTensor:
    path = source.path
    where = f"{path}: tensor {key!r}"
    if tensor.layout != torch.strided:
        layout = str(tensor.layout).removeprefix("torch.")
        raise ValueError(f"{where} is {layout}; wtraj reads dense (strided) tensors only.")
    dtype = str(tensor.dtype).removeprefix("torch.")
    shape = tuple(tensor.shape)
    # every storage is checked as torch.load checks it, though only floating tensors are read
    untyped = tensor.untyped_storage()
    record_offset = getattr(untyped, "_checkpoint_offset", None)
    if record_offset not in records:
        raise ValueError(f"{where}: its storage record was not found in the archive (corrupted file?).")
    record_size, byte_order = records[record_offset]
    if record_size != untyped.nbytes():
        raise ValueError(
            f"{where}: corrupted file: its storage record holds {record_size} bytes but the pickle "
            f"says {untyped.nbytes()}."
        )
    itemsize = tensor.element_size()
    # one past the last element the tensor covers in its storage
    extent = tensor.storage_offset() + sum((n - 1) * s for n, s in zip(shape, tensor.stride())) + 1
    if tensor.numel() and extent * itemsize > record_size:
        raise ValueError(
            f"{where}: corrupted file: the tensor needs {extent * itemsize} bytes of its storage "
            f"record, which holds {record_size}."
        )
    storage = STORAGE_DTYPES.get(dtype)
    if storage is None:
        # only floating tensors are ever read
        return StoredTensor(key=key, shape=shape, dtype=dtype, source=source, storage=None)
    storage = storage.newbyteorder(byte_order)
    file_offset = record_offset + tensor.storage_offset() * storage.itemsize
    if tensor.is_contiguous():
        return StoredTensor(key, shape, dtype, source, storage, file_offset=file_offset)
    # a non-contiguous tensor (rare in a state_dict) has no C-order run of bytes: read its
    # storage span once, here, and keep its values in C order
    span = np.empty(extent - tensor.storage_offset(), storage)
    read_exactly(f.fileno(), span, file_offset, where)
    strides = tuple(s * storage.itemsize for s in tensor.stride())
    values = np.lib.stride_tricks.as_strided(span, shape, strides).reshape(-1).copy()
    return StoredTensor(key, shape, dtype, source, storage, values=values)


def _unpickler_reason(exc: BaseException) -> str:
    # torch's message is long; the line naming the refused global is the one that explains
    lines = [line.strip() for line in str(exc).splitlines()]
    reason = next((line for line in lines if "Unsupported" in line), None)
    return reason.removeprefix("WeightsUnpickler error: ") if reason else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
