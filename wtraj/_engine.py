"""What a public function does before its pass: choose the backend, wrap the input as sources.

The pass itself is :class:`wtraj._pass.Pass`. With a process group, every
rank opens the input and the ranks agree that all could, and on what they
opened, before any pass starts.
"""

from __future__ import annotations

import importlib
from typing import Any

from wtraj._backend import resolve_backend
from wtraj._blocks import Source
from wtraj._dtypes import is_torch_tensor
from wtraj._group import PassGroup, pass_group
from wtraj._source import as_source, is_source

_BACKEND_MODULES = {
    "numba": "wtraj.kernels.numba",
    "triton": "wtraj.kernels.triton",
    "reference": "wtraj.kernels.reference",
}


def device_of(X: Any) -> str:
    """Where the data lives ("cpu" or "cuda") without reading it."""
    if is_source(X):
        return X.device
    first = X[0] if isinstance(X, (list, tuple)) and X else X
    if is_torch_tensor(first):
        return first.device.type
    return "cpu"


def load_backend(name: str):
    """Import a backend's kernel package; a requested backend that cannot load raises."""
    try:
        return importlib.import_module(_BACKEND_MODULES[name])
    except ImportError as error:
        raise ImportError(
            f"backend={name!r} is not available: {error}. Install it (pip install 'wtraj[gpu]' "
            "for Triton) or choose another backend."
        ) from error


class PendingBackend:
    """A backend's kernel package not imported yet: the pass loads it on a thread while it starts reading.

    Given for data streamed from disk to the Numba backend, whose import and
    first kernel calls (loading the compiled kernels from Numba's disk cache)
    take about a second in a new process: the disk reads meanwhile
    (:class:`wtraj._pass.Pass`).
    """

    def __init__(self, name: str):
        self.name = name

    def load(self):
        return load_backend(self.name)


def prepare(X: Any, Y: Any = None, backend: str | None = None, group: Any = None):
    """Resolve the backend for the data and wrap X (and Y) as sources.

    Returns ``(x_source, y_source or None, kernels, pass_group or None)``;
    ``kernels`` is the backend's kernel package, or a :class:`PendingBackend`
    for the Numba backend on a source that reads from disk.
    With ``group`` (a torch.distributed process group), an input that one
    rank cannot open raises on every rank, naming the rank; so do inputs
    whose shapes differ between ranks.
    """
    ranks = pass_group(group)
    if ranks is None:
        return (*_open(X, Y, backend), None)
    opened, error = None, None
    try:
        opened = _open(X, Y, backend)
    except Exception as caught:
        error = caught
    ranks.agree(error, "wtraj: opening the input")
    x_source, y_source = opened[0], opened[1]
    _agree_on_shapes(ranks, x_source, y_source)
    return (*opened, ranks)


def _agree_on_shapes(ranks: PassGroup, x_source: Source, y_source: Source | None) -> None:
    def shape(source: Source | None):
        if source is None:
            return None
        return (source.n_checkpoints, source.n_params, source.dtype, len(source.layers))

    mine = (shape(x_source), shape(y_source))
    seen = ranks.gather(mine, "wtraj: comparing the input across ranks")
    for rank, theirs in enumerate(seen):
        if theirs != seen[0]:
            raise ValueError(
                f"the input differs between ranks: rank 0 opened (n_checkpoints, n_params, dtype, "
                f"n_tensors) = {seen[0]}, rank {rank} opened {theirs}; every rank must read the same "
                "checkpoints."
            )


def _open(X: Any, Y: Any, backend: str | None):
    device = device_of(X)
    if Y is not None and device_of(Y) != device:
        raise ValueError(f"X is on {device} but Y is on {device_of(Y)}; put both on the same device.")
    name = resolve_backend(backend, device)
    # Triton reads half precision natively; the CPU kernels take float32 for float16,
    # and bfloat16 as bit patterns that they widen as they load them.
    widen_half = name != "triton"
    x_source = as_source(X, "X", widen_half)
    y_source = None
    if Y is not None:
        y_source = as_source(Y, "Y", widen_half)
        if y_source.n_params != x_source.n_params:
            raise ValueError(
                f"X and Y must have the same number of parameters (columns); "
                f"X has {x_source.n_params}, Y has {y_source.n_params}."
            )
    if name == "numba" and y_source is None and x_source.buffer_bytes_per_column > 0:
        return x_source, y_source, PendingBackend(name)
    return x_source, y_source, load_backend(name)
