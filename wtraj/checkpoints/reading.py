"""Read one checkpoint's tensors, whatever its format, sharded or not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from wtraj.checkpoints.discovery import INDEX_SUFFIXES, CheckpointLocation
from wtraj.checkpoints.file_reads import open_identified
from wtraj.checkpoints.numpy_reader import read_npy, read_npz
from wtraj.checkpoints.safetensors_reader import read_safetensors
from wtraj.checkpoints.stored import StoredTensor, short_repr
from wtraj.checkpoints.strict_json import parse_json_object
from wtraj.checkpoints.torch_reader import read_torch

# shard indexes larger than safetensors' header limit are refused before they are parsed
MAX_INDEX_BYTES = 100_000_000

READERS: dict[str, Callable[[Path], dict[str, StoredTensor]]] = {
    ".safetensors": read_safetensors,
    ".pt": read_torch,
    ".pth": read_torch,
    ".bin": read_torch,
    ".ckpt": read_torch,
    ".npy": read_npy,
    ".npz": read_npz,
}


def read_checkpoint(
    location: CheckpointLocation, allow_outside_shards: bool = False
) -> dict[str, StoredTensor]:
    """The tensors of one checkpoint (located in their files, not read), keyed by their name in the file."""
    path = location.path
    if path.name.endswith(INDEX_SUFFIXES):
        return read_sharded(path, allow_outside_shards, location.shard_root)
    return READERS[path.suffix.lower()](path)


def read_sharded(
    index_path: Path, allow_outside_shards: bool = False, shard_root: Path | None = None
) -> dict[str, StoredTensor]:
    """The tensors of a sharded checkpoint, shard by shard, as its index maps them.

    Parameters
    ----------
    index_path : Path
        The shard index (``*.safetensors.index.json`` / ``*.bin.index.json``).
    allow_outside_shards : bool
        Follow shard names that lead outside the index's folder (``../x``, an
        absolute path, a symlink to elsewhere). Off by default: a downloaded
        model folder must not make wtraj read other files of the machine.
    shard_root : Path, optional
        The folder shards may resolve into, by default the index's own; a
        shard's name must lie inside the index's folder either way.

    Raises
    ------
    ValueError
        If the index is not valid JSON or too large, lacks a ``weight_map`` of
        tensor -> shard file name, points to a missing shard or outside its
        folder, or names a tensor its shard does not hold.
    """
    f, source = open_identified(index_path)
    with f:
        if source.size > MAX_INDEX_BYTES:
            raise ValueError(
                f"{index_path}: the shard index takes {source.size} bytes; wtraj reads indexes of at "
                f"most {MAX_INDEX_BYTES} bytes."
            )
        raw = f.read(MAX_INDEX_BYTES)
    index = parse_json_object(index_path, raw, "the shard index")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index_path}: corrupted shard index: no 'weight_map' of tensor -> shard file.")
    shards: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise ValueError(
                f"{index_path}: corrupted shard index: tensor {key!r} maps to {short_repr(shard)}, "
                "not a shard file name."
            )
        shards.setdefault(shard, []).append(key)
    folder = index_path.parent.resolve()
    root = folder if shard_root is None else Path(shard_root).resolve()
    tensors: dict[str, StoredTensor] = {}
    for shard, keys in shards.items():
        shard_path = index_path.parent / shard
        # the name stays in the folder (no "..", not absolute), and what it links to in the root
        named_inside = os.path.normpath(folder / shard).startswith(str(folder) + os.sep)
        if not allow_outside_shards and not (named_inside and shard_path.resolve().is_relative_to(root)):
            raise ValueError(
                f"{index_path}: shard {shard!r} lies outside the index's folder {str(folder)!r}; "
                "wtraj reads only shards inside it unless told otherwise "
                "(wtraj.open(..., allow_outside_shards=True))."
            )
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
