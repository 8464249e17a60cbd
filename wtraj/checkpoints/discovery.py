"""Find the checkpoints a path stands for, in training order.

A path may be a checkpoint file, a sharded checkpoint's index
(``*.safetensors.index.json`` / ``*.bin.index.json``), a model folder (a
Hugging Face ``save_pretrained`` folder, one checkpoint), or a run folder
holding many checkpoints: ``checkpoint-<step>/`` subfolders (Hugging Face
Trainer), checkpoint files, or model subfolders. Names sort naturally, so
``epoch2`` comes before ``epoch10``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# suffix -> format family; a run folder must hold one family only
FORMAT_OF_SUFFIX = {
    ".safetensors": "safetensors",
    ".pt": "torch",
    ".pth": "torch",
    ".bin": "torch",
    ".ckpt": "torch",
    ".npy": "numpy",
    ".npz": "numpy",
}
# weight files of a model folder, most preferred first (safetensors before pickles,
# as transformers does)
MODEL_FILE_NAMES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
    "adapter_model.safetensors",
    "adapter_model.bin",
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
)
INDEX_SUFFIXES = (".safetensors.index.json", ".bin.index.json")
STEP_FOLDER = re.compile(r"checkpoint[-_](\d+)")


@dataclass(frozen=True)
class CheckpointLocation:
    """One checkpoint on disk: the file to read (a weights file or a shard index) and its label.

    ``shard_root``: the folder a shard index's shards may resolve into (by
    default the index's own folder); a Hugging Face cache links its snapshots'
    files to the repository's blobs folder beside them.
    """

    name: str
    path: Path
    shard_root: Path | None = None

    @property
    def format(self) -> str:
        if self.path.name.endswith(INDEX_SUFFIXES):
            return "safetensors" if self.path.name.endswith(".safetensors.index.json") else "torch"
        return FORMAT_OF_SUFFIX[self.path.suffix.lower()]


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``epoch2`` < ``epoch10``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def discover(paths: str | os.PathLike | list | tuple) -> list[CheckpointLocation]:
    """The checkpoints ``paths`` stand for, in order.

    A single path may be a run folder (many checkpoints) or one checkpoint; each
    element of a list must be one checkpoint (a file, an index or a model folder).

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If nothing readable is found, a run folder mixes formats, or a list
        element holds more than one checkpoint.
    """
    if isinstance(paths, (str, os.PathLike)):
        return _discover_given(paths)
    if len(paths) == 0:
        raise ValueError("wtraj.open got an empty list of paths.")
    locations = []
    for given in paths:
        found = _discover_given(given)
        if len(found) != 1:
            raise ValueError(
                f"{given}: holds {len(found)} checkpoints; in a list, each path must be one "
                "checkpoint (pass a run folder on its own to read all its checkpoints)."
            )
        locations.append(found[0])
    return _unique_names(locations)


def _discover_given(given: str | os.PathLike) -> list[CheckpointLocation]:
    from wtraj.checkpoints import hub

    if hub.is_hub_path(given):
        return hub.discover(given)
    return _discover_one(Path(given))


def _discover_one(path: Path) -> list[CheckpointLocation]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder.")
    if path.is_file():
        _check_suffix(path)
        return [CheckpointLocation(path.name, path)]
    model_file = model_file_of(path)
    step_folders = sorted(
        (p for p in path.iterdir() if p.is_dir() and STEP_FOLDER.fullmatch(p.name)),
        key=lambda p: int(STEP_FOLDER.fullmatch(p.name).group(1)),
    )
    if step_folders:
        return [_model_folder(p) for p in step_folders]
    if model_file is not None:
        return [CheckpointLocation(path.name, model_file)]
    files = sorted(
        (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMAT_OF_SUFFIX),
        key=lambda p: natural_key(p.name),
    )
    if files:
        _check_one_format(path, files)
        return [CheckpointLocation(p.name, p) for p in files]
    subfolders = sorted(
        (p for p in path.iterdir() if p.is_dir() and model_file_of(p) is not None),
        key=lambda p: natural_key(p.name),
    )
    if subfolders:
        return [_model_folder(p) for p in subfolders]
    raise ValueError(
        f"{path}: no checkpoints found: the folder holds no checkpoint files "
        f"({', '.join(sorted(FORMAT_OF_SUFFIX))}), no checkpoint-<step>/ subfolders and no "
        f"model weights ({', '.join(MODEL_FILE_NAMES)})."
    )


def model_file_of(folder: Path) -> Path | None:
    """The weights file (or shard index) of a model folder, or None if it has none."""
    for name in MODEL_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    indexes = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(INDEX_SUFFIXES))
    return indexes[0] if indexes else None


def _model_folder(folder: Path) -> CheckpointLocation:
    model_file = model_file_of(folder)
    if model_file is None:
        raise ValueError(
            f"{folder}: this checkpoint folder holds no model weights "
            f"(looked for {', '.join(MODEL_FILE_NAMES)})."
        )
    return CheckpointLocation(folder.name, model_file)


def _check_suffix(path: Path) -> None:
    if path.name.endswith(INDEX_SUFFIXES) or path.suffix.lower() in FORMAT_OF_SUFFIX:
        return
    raise ValueError(
        f"{path}: unrecognized checkpoint format {path.suffix!r}; expected one of "
        f"{', '.join(sorted(FORMAT_OF_SUFFIX))} or a shard index ({', '.join(INDEX_SUFFIXES)})."
    )


def _check_one_format(folder: Path, files: list[Path]) -> None:
    by_format: dict[str, list[str]] = {}
    for p in files:
        by_format.setdefault(FORMAT_OF_SUFFIX[p.suffix.lower()], []).append(p.name)
    if len(by_format) > 1:
        listing = "; ".join(f"{fmt}: {', '.join(names[:3])}" for fmt, names in by_format.items())
        raise ValueError(
            f"{folder}: the folder mixes checkpoint formats ({listing}); wtraj reads a run folder "
            "of one format only. Pass the files you mean as a list."
        )


def _unique_names(locations: list[CheckpointLocation]) -> list[CheckpointLocation]:
    names = [loc.name for loc in locations]
    if len(set(names)) == len(names):
        return locations
    # e.g. runs/a/model.safetensors and runs/b/model.safetensors: label them by path
    return [CheckpointLocation(str(loc.path), loc.path) for loc in locations]
