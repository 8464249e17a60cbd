"""Choose the tensors to read and check that every checkpoint has them, with the same shapes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from wtraj._blocks import Layer
from wtraj.checkpoints.stored import StoredTensor


@dataclass
class Selection:
    """The tensors that form the flattened parameter vector, aligned across checkpoints."""

    layers: list[Layer]
    # tensors[i][k]: layer k of checkpoint i
    tensors: list[list[StoredTensor]]
    # name -> stored dtype of the tensors left out because they are not floating point (or empty)
    skipped: dict[str, str]


def rename(
    tensors: dict[str, StoredTensor], strip_prefix: Sequence[str], label: str
) -> dict[str, StoredTensor]:
    """Key the tensors by their names with leading ``strip_prefix`` es removed (repeatedly).

    Raises
    ------
    ValueError
        If two keys become the same name.
    """
    renamed: dict[str, StoredTensor] = {}
    for key, tensor in tensors.items():
        name = key
        while True:
            prefix = next((p for p in strip_prefix if p and name.startswith(p)), None)
            if prefix is None:
                break
            name = name[len(prefix) :]
        if name in renamed:
            raise ValueError(
                f"{label}: tensors {renamed[name].key!r} and {key!r} both become {name!r} once "
                f"the prefixes {tuple(strip_prefix)} are stripped; pass strip_prefix=() to keep "
                "the keys."
            )
        renamed[name] = tensor
    return renamed


def select(
    checkpoints: list[dict[str, StoredTensor]],
    labels: list[str],
    include: str | re.Pattern | None,
    exclude: str | re.Pattern | None,
) -> Selection:
    """Keep the floating tensors matching ``include``, not ``exclude``, in checkpoint 0's order.

    Raises
    ------
    ValueError
        If no tensor is left, or a checkpoint's names or shapes differ from the
        first checkpoint's (the message names the first differing tensor and
        both shapes).
    """
    include_re = re.compile(include) if include is not None else None
    exclude_re = re.compile(exclude) if exclude is not None else None

    def wanted(name: str) -> bool:
        return (include_re is None or include_re.search(name) is not None) and (
            exclude_re is None or exclude_re.search(name) is None
        )

    chosen = [{n: t for n, t in ckpt.items() if wanted(n)} for ckpt in checkpoints]
    reference = chosen[0]
    for i in range(1, len(chosen)):
        _check_same_tensors(reference, chosen[i], labels[0], labels[i])

    names = [n for n, t in reference.items() if t.is_float and t.size > 0]
    kept = set(names)
    skipped = {
        n: f"{t.dtype} (empty)" if t.is_float else t.dtype for n, t in reference.items() if n not in kept
    }
    if not names:
        everything = ", ".join(list(checkpoints[0])[:8])
        raise ValueError(
            f"{labels[0]}: no floating-point tensor is left to read (include={include!r}, "
            f"exclude={exclude!r}; the checkpoint holds: {everything}"
            f"{', ...' if len(checkpoints[0]) > 8 else ''})."
        )
    layers = []
    offset = 0
    for name in names:
        layers.append(Layer(name, reference[name].shape, offset))
        offset += reference[name].size
    tensors = [[ckpt[n] for n in names] for ckpt in chosen]
    # a tensor read in one checkpoint and skipped in another would drop values silently
    for i in range(1, len(chosen)):
        for name, first in reference.items():
            tensor = chosen[i][name]
            if tensor.is_float != first.is_float:
                raise ValueError(
                    f"{labels[i]}: tensor {tensor.key!r} is {tensor.dtype} but {first.dtype} in "
                    f"{labels[0]}; a tensor must be floating point in every checkpoint or in none."
                )
    return Selection(layers, tensors, skipped)


def _check_same_tensors(
    reference: dict[str, StoredTensor], other: dict[str, StoredTensor], ref_label: str, label: str
) -> None:
    for name, tensor in reference.items():
        if name not in other:
            raise ValueError(
                f"{label}: has no tensor {name!r}, which {ref_label} holds with shape "
                f"{tensor.shape}; every checkpoint must hold the same tensors (use "
                "include=/exclude= to choose)."
            )
        if other[name].shape != tensor.shape:
            raise ValueError(
                f"{label}: tensor {name!r} has shape {other[name].shape} but shape {tensor.shape} "
                f"in {ref_label}."
            )
    extra = next((n for n in other if n not in reference), None)
    if extra is not None:
        raise ValueError(
            f"{label}: holds tensor {extra!r} (shape {other[extra].shape}), which {ref_label} "
            "lacks; every checkpoint must hold the same tensors (use include=/exclude= to choose)."
        )
