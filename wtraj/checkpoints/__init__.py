"""Checkpoints as users have them, streamed from disk: :func:`open` and :class:`Checkpoints`.

Reads safetensors (single or sharded), PyTorch state_dict files (``.pt``,
``.pth``, ``.bin``, Lightning ``.ckpt``; loaded with ``weights_only=True``, so
no code ever runs), Hugging Face model / Trainer folders, PEFT adapters and
``.npy`` / ``.npz``. Tensors stay in their files until a block reads them
(with pread, through a bounded number of descriptors); a file that changes
after its header was read is reported, never read as a mix of two versions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from wtraj._memory import resolve_memory_budget
from wtraj.checkpoints.checkpoints import Checkpoints
from wtraj.checkpoints.discovery import discover, natural_key
from wtraj.checkpoints.hub import at_revisions
from wtraj.checkpoints.reading import read_checkpoint
from wtraj.checkpoints.selection import rename, select

__all__ = ["Checkpoints", "open", "natural_key"]


def open(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    include: str | re.Pattern | None = None,
    exclude: str | re.Pattern | None = None,
    strip_prefix: Sequence[str] = ("module.", "model."),
    memory_budget: int | str | None = None,
    check_finite: bool = True,
    revisions: Sequence[str] | None = None,
    allow_outside_shards: bool = False,
) -> Checkpoints:
    """Open checkpoints for streaming: read their headers, check they agree, read no values.

    Parameters
    ----------
    paths : path or list of paths
        A run folder (its checkpoint files, ``checkpoint-<step>/`` subfolders
        or model subfolders, in natural order: ``epoch2`` before ``epoch10``;
        ``checkpoint-<step>/`` subfolders take precedence over weights at the top
        of the folder, such as the Trainer's final save),
        a single checkpoint (file, shard index, or model folder), or a list of
        single checkpoints in the order given. ``hf://ORG/NAME@REVISION`` is a
        checkpoint on the Hugging Face Hub and ``hf://ORG/NAME@step*`` every
        matching revision in natural order (:mod:`wtraj.checkpoints.hub`).
    include, exclude : str or re.Pattern, optional
        Keep the tensors whose (prefix-stripped) name matches ``include`` and
        not ``exclude`` (``re.search``).
    strip_prefix : sequence of str
        Leading prefixes removed from tensor names, repeatedly, so that
        ``module.fc.weight`` (DDP) and ``fc.weight`` match.
    memory_budget : int or str, optional
        Bytes the block buffers of a pass over these checkpoints may take (an
        int, or a string such as ``"512MB"``), when the function running the
        pass is given no ``memory_budget`` of its own; default
        ``min(2 GiB, RAM / 8)``. The pass owns the arithmetic
        (:class:`wtraj._pass.Pass`).
    check_finite : bool
        Whether computations on these checkpoints refuse NaN and Inf (naming
        checkpoint, tensor and index).
    revisions : sequence of str, optional
        With one ``hf://ORG/NAME`` path: these revisions of it, in the order given.
    allow_outside_shards : bool
        Let a shard index (``model.safetensors.index.json``) name shard files
        outside its own folder (``../x.safetensors``, an absolute path, a
        symlink leading elsewhere). Off by default, so that a downloaded model
        folder cannot make wtraj read other files of the machine.

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
        a shard lies outside its index's folder, or the checkpoints disagree
        on tensor names or shapes. Passes raise it too if a file changed
        after this call read its header.
    """
    if isinstance(strip_prefix, str):
        strip_prefix = (strip_prefix,)
    budget = None if memory_budget is None else resolve_memory_budget(memory_budget)
    if revisions is not None:
        paths = at_revisions(paths, revisions)
    locations = discover(paths)
    labels = [str(loc.path) for loc in locations]
    tensors = [
        rename(read_checkpoint(loc, allow_outside_shards), strip_prefix, label)
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
