"""Checkpoints as users have them, streamed from disk: :func:`open` and :class:`Checkpoints`.

Reads safetensors (single or sharded), PyTorch state_dict files (``.pt``,
``.pth``, ``.bin``, Lightning ``.ckpt``; loaded with ``weights_only=True``, so
no code ever runs), Hugging Face model / Trainer folders, PEFT adapters and
``.npy`` / ``.npz``. Tensors stay memory-mapped in their files until a block
reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from wtraj.checkpoints.checkpoints import Checkpoints
from wtraj.checkpoints.discovery import discover, natural_key
from wtraj.checkpoints.reading import read_checkpoint
from wtraj.checkpoints.selection import rename, select

__all__ = ["Checkpoints", "open", "default_memory_budget", "natural_key"]

# the default block-buffer budget is this fraction of RAM, capped at MAX_DEFAULT_BUDGET
RAM_FRACTION = 8
MAX_DEFAULT_BUDGET = 2 << 30


def open(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    include: str | re.Pattern | None = None,
    exclude: str | re.Pattern | None = None,
    strip_prefix: Sequence[str] = ("module.", "model."),
    memory_budget: int | None = None,
    check_finite: bool = True,
) -> Checkpoints:
    """Open checkpoints for streaming: read their headers, check they agree, read no values.

    Parameters
    ----------
    paths : path or list of paths
        A run folder (its checkpoint files, ``checkpoint-<step>/`` subfolders
        or model subfolders, in natural order: ``epoch2`` before ``epoch10``),
        a single checkpoint (file, shard index, or model folder), or a list of
        single checkpoints in the order given.
    include, exclude : str or re.Pattern, optional
        Keep the tensors whose (prefix-stripped) name matches ``include`` and
        not ``exclude`` (``re.search``).
    strip_prefix : sequence of str
        Leading prefixes removed from tensor names, repeatedly, so that
        ``module.fc.weight`` (DDP) and ``fc.weight`` match.
    memory_budget : int, optional
        Bytes the two block buffers may take together; default
        ``min(2 GiB, RAM / 8)``.
    check_finite : bool
        Whether computations on these checkpoints refuse NaN and Inf (naming
        checkpoint, tensor and index).

    Returns
    -------
    Checkpoints
        An ``(n_checkpoints, n_params)`` source for every wtraj function.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If no checkpoint is found, a file is truncated, corrupted or unsafe,
        or the checkpoints disagree on tensor names or shapes.
    """
    if isinstance(strip_prefix, str):
        strip_prefix = (strip_prefix,)
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    if budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}.")
    locations = discover(paths)
    labels = [str(loc.path) for loc in locations]
    tensors = [
        rename(read_checkpoint(loc), strip_prefix, label)
        for loc, label in zip(locations, labels, strict=True)
    ]
    selection = select(tensors, labels, include, exclude)
    return Checkpoints(
        names=[loc.name for loc in locations],
        layers=selection.layers,
        tensors=selection.tensors,
        skipped=selection.skipped,
        memory_budget=budget,
        check_finite=check_finite,
    )


def default_memory_budget() -> int:
    """``min(2 GiB, RAM / 8)`` bytes for block buffers."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return MAX_DEFAULT_BUDGET
    return min(MAX_DEFAULT_BUDGET, ram // RAM_FRACTION)
