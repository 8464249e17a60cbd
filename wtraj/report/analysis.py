"""The ``wtraj analyze`` job: from checkpoint paths to every number the report shows.

One streamed pass over the checkpoints (:func:`wtraj.trajectory_stats` with
``by_layer=True``) gives all distances, whole-model and per tensor. Everything
else works on those N×N matrices: run separation, ordering and shift
detection (:mod:`wtraj.analysis`, with ``metric="precomputed"``) and the
classical-MDS embedding. No N×D matrix is ever formed.

Step norms and turning angles along a run's recovered order come from the
float64 path sums of that pass wherever the recovered order follows the input
order (the usual case: files named in training order); where it does not,
they come from the distance matrix (a step is ``D[a, b]``, a turning angle
from the three distances of a triple by the law of cosines, which loses
precision for nearly straight paths; ``metrics.json`` says which per run).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wtraj.report.embedding import Embedding, classical_mds

RUNS_FROM = ("recovered", "inputs")


@dataclass(frozen=True)
class Run:
    """One recovered training run.

    Attributes
    ----------
    label : int
        Run number (``separate_trajectories``' label).
    order : ndarray of int, shape (n,)
        Checkpoint rows in recovered training order, earliest first.
    direction_confidence : float
        ``order_checkpoints``' confidence that ``order[0]`` is the start; NaN
        when the run has fewer than 3 distinct checkpoints (input order kept).
    step_norms : ndarray, shape (n-1,)
    turning_angles : ndarray, shape (n-2,), radians
    distance_from_start : ndarray, shape (n,)
    exact_path : bool
        True when step norms and angles come from the float64 path sums
        (the recovered order follows the input order).
    shifts : list of dict
        Events of :func:`wtraj.detect_shifts`: ``{"position": ..., "checkpoint": row,
        "kind": "shift" or "slowdown", "score": ...}``.
    layer_relative_change : ndarray, shape (n_layers, n-1)
        ``||Δθ_l|| / ||θ_l||`` per layer and step (the norm before the step).
    """

    label: int
    order: np.ndarray
    direction_confidence: float
    step_norms: np.ndarray
    turning_angles: np.ndarray
    distance_from_start: np.ndarray
    exact_path: bool
    shifts: list[dict]
    layer_relative_change: np.ndarray


@dataclass(frozen=True)
class Analysis:
    """Everything ``wtraj analyze`` reports (see :func:`analyze`)."""

    names: list[str]
    # input path each checkpoint was found under (one per row)
    groups: list[str]
    n_params: int
    layer_names: list[str]
    layer_shapes: list[tuple[int, ...]]
    stats: Any
    labels: np.ndarray
    # "recovered" (separate_trajectories) or "inputs" (one run per input path)
    runs_from: str
    tree_parent: np.ndarray | None
    runs: list[Run]
    embedding: Embedding
    skipped_tensors: dict[str, str]


def discover_checkpoints(paths: list[str | os.PathLike]) -> tuple[list[Path], list[str], list[str]]:
    """The checkpoint files ``paths`` stand for: each path is a run folder or one checkpoint.

    Returns
    -------
    files : list of Path
        One checkpoint path per row, in input order (natural order within a folder).
    names : list of str
        A short unique label per row (``folder/file`` when several inputs are given).
    groups : list of str
        The input path each row came from.

    Raises
    ------
    FileNotFoundError, ValueError
        A path that does not exist, or holds no checkpoints (from :mod:`wtraj.checkpoints`).
    """
    from wtraj.checkpoints.discovery import discover

    if not paths:
        raise ValueError("no checkpoint paths given: pass run folders or checkpoint files.")
    files, names, groups = [], [], []
    for given in paths:
        for location in discover(given):
            files.append(Path(location.path))
            prefix = f"{Path(given).name}/" if len(paths) > 1 and Path(given).is_dir() else ""
            names.append(prefix + location.name)
            groups.append(str(given))
    if len(set(names)) != len(names):
        names = [str(f) for f in files]
    return files, names, groups


def analyze(
    paths: list[str | os.PathLike],
    *,
    include: str | None = None,
    exclude: str | None = None,
    backend: str | None = None,
    memory_budget: int | None = None,
    n_trajectories: int | None = None,
    runs_from: str = "recovered",
    progress: bool | None = None,
) -> Analysis:
    """Distances, step norms, curvature, runs, order, shifts and embedding of checkpoints.

    Parameters
    ----------
    paths : list of paths
        Run folders and/or checkpoint files (see :func:`discover_checkpoints`).
    include, exclude : str, optional
        Tensor-name regular expressions, passed to :func:`wtraj.open`.
    backend, memory_budget, progress
        Passed to :func:`wtraj.trajectory_stats`.
    n_trajectories : int, optional
        Number of runs; inferred by :func:`wtraj.separate_trajectories` when None.
    runs_from : {"recovered", "inputs"}
        ``"recovered"``: runs found by :func:`wtraj.separate_trajectories`
        from the distances alone; ``"inputs"``: each input path is one run
        (for run folders whose grouping is known).

    Returns
    -------
    Analysis

    Raises
    ------
    FileNotFoundError, ValueError
        Paths that do not exist, hold no checkpoints, or checkpoints that
        disagree; too few checkpoints (at least 2 are needed).
    """
    import wtraj

    if runs_from not in RUNS_FROM:
        raise ValueError(f"runs_from={runs_from!r}: choose one of {', '.join(RUNS_FROM)}.")
    if runs_from == "inputs" and n_trajectories is not None:
        raise ValueError("give either a number of runs or runs_from='inputs', not both.")
    files, names, groups = discover_checkpoints(paths)
    if len(files) < 2:
        raise ValueError(
            f"{paths[0]}: found {len(files)} checkpoint; a trajectory needs at least 2 "
            "(use `wtraj diff` to compare two files)."
        )
    checkpoints = wtraj.open(files, include=include, exclude=exclude, memory_budget=memory_budget)
    stats = wtraj.trajectory_stats(
        checkpoints, by_layer=True, backend=backend, memory_budget=memory_budget, progress=progress
    )
    D = stats.distances
    if runs_from == "inputs":
        inputs = list(dict.fromkeys(groups))
        labels = np.array([inputs.index(g) for g in groups], dtype=np.int64)
    else:
        labels = _run_labels(D, n_trajectories)
    tree = wtraj.trajectory_tree(D, metric="precomputed")
    runs = [_run(label, np.flatnonzero(labels == label), stats) for label in np.unique(labels).tolist()]
    runs = _with_shifts(runs, D, labels)
    return Analysis(
        names=names,
        groups=groups,
        n_params=int(checkpoints.n_params),
        layer_names=[layer.name for layer in checkpoints.layers],
        layer_shapes=[tuple(layer.shape) for layer in checkpoints.layers],
        stats=stats,
        labels=labels,
        runs_from=runs_from,
        tree_parent=None if tree is None else np.asarray(tree),
        runs=runs,
        embedding=classical_mds(D, 3),
        skipped_tensors=dict(getattr(checkpoints, "skipped", {})),
    )


def _run_labels(D: np.ndarray, n_trajectories: int | None) -> np.ndarray:
    import wtraj

    if n_trajectories == 1:
        return np.zeros(D.shape[0], dtype=np.int64)
    return np.asarray(wtraj.separate_trajectories(D, n_trajectories, metric="precomputed"), dtype=np.int64)


def _run(label: int, rows: np.ndarray, stats: Any) -> Run:
    import wtraj

    D = stats.distances
    sub = D[np.ix_(rows, rows)]
    distinct = _n_distinct(sub)
    if distinct >= 3:
        local, confidence = wtraj.order_checkpoints(sub, metric="precomputed", return_confidence=True)
        order = rows[np.asarray(local)]
    else:
        order, confidence = rows, math.nan
    steps, angles, exact = _path_along(order, stats)
    change = np.empty((len(stats.layers), max(len(order) - 1, 0)))
    for i, layer in enumerate(stats.layers):
        before = layer.norms[order[:-1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            change[i] = np.where(before > 0, layer.distances[order[:-1], order[1:]] / before, np.nan)
    return Run(
        label=int(label),
        order=order,
        direction_confidence=float(confidence),
        step_norms=steps,
        turning_angles=angles,
        distance_from_start=D[order[0], order],
        exact_path=exact,
        shifts=[],
        layer_relative_change=change,
    )


def _n_distinct(sub: np.ndarray) -> int:
    """Number of distinct checkpoints: rows not at distance 0 from an earlier row."""
    duplicate = np.triu(sub == 0, 1).any(axis=0)
    return int((~duplicate).sum())


def _path_along(order: np.ndarray, stats: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Step norms and turning angles along ``order``; exact path sums when it is consecutive."""
    if np.all(np.diff(order) == 1):
        start = int(order[0])
        n = len(order)
        steps = stats.step_norms[start : start + n - 1]
        angles = stats.turning_angles[start : start + n - 2] if n >= 3 else np.empty(0)
        return np.array(steps, dtype=float), np.array(angles, dtype=float), True
    D = stats.distances
    steps = D[order[:-1], order[1:]]
    a, b = steps[:-1], steps[1:]
    c = D[order[:-2], order[2:]]
    with np.errstate(divide="ignore", invalid="ignore"):
        # law of cosines: <u, v> = (|u + v|² - |u|² - |v|²) / 2 with u, v consecutive steps
        cosine = (c**2 - a**2 - b**2) / (2 * a * b)
    angles = np.where((a > 0) & (b > 0), np.arccos(np.clip(cosine, -1, 1)), np.nan)
    return np.array(steps, dtype=float), angles, False


def _with_shifts(runs: list[Run], D: np.ndarray, labels: np.ndarray) -> list[Run]:
    """The runs with their shift and slowdown events from :func:`wtraj.detect_shifts`."""
    import dataclasses

    import wtraj

    # detect_shifts needs two steps to compare in some run: at least 4 distinct checkpoints
    if _n_distinct(D) < 4:
        return runs
    events = wtraj.detect_shifts(D, labels, metric="precomputed")
    updated = []
    for run in runs:
        position_of = {int(row): position for position, row in enumerate(run.order)}
        shifts = [
            {
                "position": position_of[int(event.index)],
                "checkpoint": int(event.index),
                "kind": event.kind,
                "score": float(event.score),
            }
            for event in events
            if int(event.index) in position_of
        ]
        updated.append(dataclasses.replace(run, shifts=shifts))
    return updated
