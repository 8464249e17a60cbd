"""Read one checkpoint's tensors, whatever its format, sharded or not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from wtraj.checkpoints.discovery import INDEX_SUFFIXES, CheckpointLocation
from wtraj.checkpoints.numpy_reader import read_npy, read_npz
from wtraj.checkpoints.safetensors_reader import read_safetensors
from wtraj.checkpoints.stored import StoredTensor
from wtraj.checkpoints.torch_reader import read_torch

READERS: dict[str, Callable[[Path], dict[str, StoredTensor]]] = {
    ".safetensors": read_safetensors,
    ".pt": read_torch,
    ".pth": read_torch,
    ".bin": read_torch,
    ".ckpt": read_torch,
    ".npy": read_npy,
    ".npz": read_npz,
}


def read_checkpoint(location: CheckpointLocation) -> dict[str, StoredTensor]:
    """The tensors of one checkpoint (memory-mapped, not read), keyed by their name in the file."""
    path = location.path
    if path.name.endswith(INDEX_SUFFIXES):
        return read_sharded(path)
    return READERS[path.suffix.lower()](path)


def read_sharded(index_path: Path) -> dict[str, StoredTensor]:
    """The tensors of a sharded checkpoint, shard by shard, as its index maps them.

    Raises
    ------
    ValueError
        If the index is not valid JSON, lacks a ``weight_map``, points to a
        missing shard, or names a tensor its shard does not hold.
    """
    try:
        index = json.loads(index_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{index_path}: corrupted shard index (not valid JSON: {exc}).") from exc
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index_path}: corrupted shard index: no 'weight_map' of tensor -> shard file.")
    shards: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        shards.setdefault(shard, []).append(key)
    tensors: dict[str, StoredTensor] = {}
    for shard, keys in shards.items():
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise ValueError(
                f"{index_path}: the index points to a missing shard {shard!r} "
                f"(holding {keys[0]!r} and {len(keys) - 1} more tensors)."
            )
        if shard_path.suffix.lower() not in READERS:
            raise ValueError(f"{index_path}: shard {shard!r} has an unrecognized format.")
        in_shard = READERS[shard_path.suffix.lower()](shard_path)
        missing = [k for k in keys if k not in in_shard]
        if missing:
            raise ValueError(
                f"{index_path}: the index maps tensor {missing[0]!r} to shard {shard!r}, "
                "which does not hold it."
            )
        wanted = set(keys)
        tensors.update((k, t) for k, t in in_shard.items() if k in wanted)
    return tensors
