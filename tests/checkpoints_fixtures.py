"""Checkpoint-reader test helpers: write checkpoints with the real libraries, read blocks back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wtraj._dtypes import host_floats

# a small model's tensors: names, shapes; plus an integer buffer that readers must skip
MODEL_SHAPES = {
    "conv.weight": (4, 3, 3, 3),
    "conv.bias": (4,),
    "bn.weight": (4,),
    "bn.bias": (4,),
    "fc.weight": (10, 37),
    "fc.bias": (10,),
}


def make_state(seed: int, dtype=np.float32, shapes=MODEL_SHAPES) -> dict[str, np.ndarray]:
    """A state dict of NumPy arrays with reproducible values."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}


def flatten(state: dict[str, np.ndarray], names) -> np.ndarray:
    """The C-order concatenation of ``state[name]`` in the order of ``names``, as float64."""
    return np.concatenate([np.asarray(state[n], dtype=np.float64).reshape(-1) for n in names])


def dense(ck, max_width: int = 1 << 20) -> np.ndarray:
    """All columns of a source as float64, gathered block by block (copies, since buffers are reused)."""
    X = np.full((ck.n_checkpoints, ck.n_params), np.nan)
    for block in ck.blocks(max_width):
        X[:, block.offset : block.offset + block.width] = host_floats(block.data[:, block.start : block.stop])
    return X


def to_torch(state: dict[str, np.ndarray], dtype=None) -> dict:
    """The same state dict as torch tensors, optionally cast to ``dtype``."""
    import torch

    tensors = {k: torch.from_numpy(v.copy()) for k, v in state.items()}
    return tensors if dtype is None else {k: t.to(dtype) for k, t in tensors.items()}


def write_sharded_safetensors(folder: Path, state: dict[str, np.ndarray], n_shards: int = 2) -> Path:
    """A Hugging Face style sharded checkpoint: shard files plus model.safetensors.index.json."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    names = list(state)
    weight_map = {}
    for s in range(n_shards):
        shard = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {n: state[n] for n in names[s::n_shards]}
        save_file(part, str(folder / shard))
        weight_map.update(dict.fromkeys(part, shard))
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return index


def write_sharded_torch(folder: Path, state: dict, n_shards: int = 2) -> Path:
    """A sharded pytorch_model.bin checkpoint with its index."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    names = list(state)
    weight_map = {}
    for s in range(n_shards):
        shard = f"pytorch_model-{s + 1:05d}-of-{n_shards:05d}.bin"
        part = {n: state[n] for n in names[s::n_shards]}
        torch.save(part, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index
