"""Files of the evaluation zoo: one ``.npz`` per run and a ``catalogue.json`` per folder, written atomically.

A run's file holds ``weights`` (n, D) float32, ``steps`` (n,) int64 and its
``meta`` as JSON (the ``config`` inside it decides whether the cached run
is still the one asked for). ``catalogue.json`` holds ``{"size": ...,
"runs": [{"id", "file", "meta"}, ...]}``, the metas of every run built in
the folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

CATALOGUE = "catalogue.json"


def atomic_write(path: Path, write: Callable[[object], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    A failure (or an interrupt) leaves ``path`` as it was and no temporary
    file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        # mkstemp makes the file private; a zoo file is as readable as any other
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_file(out_dir: Path, run_id: str) -> Path:
    """Where run ``run_id`` (``"s0/name"``) is stored: ``out_dir/s0/name.npz``."""
    return Path(out_dir) / f"{run_id}.npz"


def write_run(out_dir: Path, run_id: str, weights: np.ndarray, steps: np.ndarray, meta: dict) -> Path:
    path = run_file(out_dir, run_id)
    meta_json = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(path, lambda file: np.savez(file, weights=weights, steps=steps, meta_json=meta_json))
    return path


def read_meta(path: Path) -> dict | None:
    """The meta stored in a run file, or None when the file is missing or unreadable."""
    try:
        with np.load(path) as data:
            return json.loads(data["meta_json"].tobytes().decode())
    except (OSError, KeyError, ValueError):
        return None


def read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(weights, steps)`` of a run file."""
    try:
        with np.load(path) as data:
            return data["weights"], data["steps"]
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"cannot read zoo run file {path}: {error}") from error


def read_catalogue(out_dir: Path) -> dict:
    """The folder's catalogue, ``{"size": None, "runs": []}`` where there is none yet."""
    path = Path(out_dir) / CATALOGUE
    if not path.exists():
        return {"size": None, "runs": []}
    try:
        catalogue = json.loads(path.read_text())
        catalogue["runs"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a zoo catalogue: {error}") from error
    return catalogue


def write_catalogue(out_dir: Path, catalogue: dict) -> None:
    text = json.dumps(catalogue, indent=1).encode()
    atomic_write(Path(out_dir) / CATALOGUE, lambda file: file.write(text))
