"""Read PyTorch ``state_dict`` files (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) without running code.

Files are opened with ``torch.load(weights_only=True, mmap=True)``: the
restricted unpickler refuses anything but tensors and plain containers, so a
malicious pickle cannot execute, and tensor data stays in the file (memory
mapped) until a block reads it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from wtraj.checkpoints.stored import StoredTensor

# keys under which training scripts nest the model's state_dict, tried in this order
# (Lightning's .ckpt uses "state_dict")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")


def read_torch(path: Path) -> dict[str, StoredTensor]:
    """The tensors of one PyTorch checkpoint file, in the state_dict's order.

    Nested wrappers (``{"state_dict": ...}``, ``{"model": ...}``, a Lightning
    ``.ckpt``) are unwrapped; nested dicts of tensors are flattened with dots.

    Raises
    ------
    ValueError
        If the file is not a readable PyTorch checkpoint (truncated, corrupted,
        or a pickle that needs more than tensors), or holds no tensors.
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"{path}: reading PyTorch checkpoints needs torch (pip install torch).") from exc
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: refused to load: the pickle needs more than tensors and plain containers, "
            "and wtraj never runs code from a checkpoint (torch.load weights_only=True). "
            "Save the model's state_dict() alone, or convert the file to safetensors. "
            f"(torch said: {_unpickler_reason(exc)})"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint (truncated, corrupted, or saved in the "
            f"legacy non-zip format, which cannot be memory-mapped): {_first_line(exc)}"
        ) from exc
    state = _unwrap(loaded)
    tensors: dict[str, StoredTensor] = {}
    _collect(state, "", path, tensors, torch)
    if not tensors:
        raise ValueError(f"{path}: holds no tensors (found {type(loaded).__name__}).")
    return tensors


def _unwrap(loaded: Any) -> Any:
    while isinstance(loaded, dict):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(loaded.get(k), dict)), None)
        if wrapper is None:
            return loaded
        loaded = loaded[wrapper]
    return loaded


def _collect(node: Any, prefix: str, path: Path, out: dict[str, StoredTensor], torch: Any) -> None:
    if isinstance(node, torch.Tensor):
        key = prefix.removesuffix(".")
        out[key] = _stored(node, key, path, torch)
    elif isinstance(node, dict):
        for key, value in node.items():
            _collect(value, f"{prefix}{key}.", path, out, torch)


def _stored(tensor: Any, key: str, path: Path, torch: Any) -> StoredTensor:
    dtype = str(tensor.dtype).removeprefix("torch.")
    values = None
    # only floating tensors are ever read; the values stay in the memory-mapped file
    # (a non-contiguous tensor, rare in a state_dict, has no flat view and is copied once)
    if dtype == "bfloat16":
        values = tensor.detach().reshape(-1).view(torch.int16).numpy().view(np.uint16)
    elif dtype in ("float16", "float32", "float64"):
        values = tensor.detach().reshape(-1).numpy()
    return StoredTensor(key=key, shape=tuple(tensor.shape), dtype=dtype, file=path, values=values)


def _unpickler_reason(exc: BaseException) -> str:
    # torch's message is long; the line naming the refused global is the one that explains
    lines = [line.strip() for line in str(exc).splitlines()]
    reason = next((line for line in lines if "Unsupported" in line), None)
    return reason.removeprefix("WeightsUnpickler error: ") if reason else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
