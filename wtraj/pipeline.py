"""The job behind ``wtraj analyze`` and :func:`wtraj.analyze`: from checkpoint paths to every number.

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
precision for nearly straight paths; ``Run.exact_path`` says which).

The command line parses arguments and prints; :mod:`wtraj.report` renders the
result; neither computes anything of its own.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wtraj._group import PassGroup, pass_group
from wtraj.report.embedding import classical_mds
from wtraj.result import Analysis, Run, SharedCheckpoint

RUNS_FROM = ("recovered", "inputs")


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

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
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
    paths: str | os.PathLike | list[str | os.PathLike],
    *,
    include: str | None = None,
    exclude: str | None = None,
    backend: str | None = None,
    memory_budget: int | str | None = None,
    n_runs: int | None = None,
    runs_from: str = "recovered",
    progress: bool | None = None,
    allow_outside_shards: bool = False,
    group: Any = None,
    on_open: Callable[[Any], None] | None = None,
) -> Analysis:
    """Distances, step norms, curvature, runs, order, shifts and embedding of checkpoints.

    The Python form of ``wtraj analyze``, with the same options.

    Parameters
    ----------
    paths : path or list of paths
        Run folders and/or checkpoint files (see :func:`discover_checkpoints`).
    include, exclude : str, optional
        Tensor-name regular expressions (``--include``, ``--exclude``), passed to :func:`wtraj.open`.
    backend, memory_budget, progress
        Passed to :func:`wtraj.trajectory_stats` (``--backend``, ``--memory-budget``,
        ``--no-progress``).
    n_runs : int, optional
        Number of runs (``--runs``); inferred by :func:`wtraj.separate_trajectories` when None.
    runs_from : {"recovered", "inputs"}
        ``"recovered"`` (``--runs-from recovered``): runs found by
        :func:`wtraj.separate_trajectories` from the distances and norms;
        ``"inputs"``: each input path is one run (for run folders whose grouping is known).
    allow_outside_shards : bool
        Let a shard index name shards outside its folder (``--allow-outside-shards``,
        see :func:`wtraj.open`).
    group : torch.distributed ProcessGroup, optional
        Split the pass over the checkpoints across the group's processes
        (:func:`wtraj.trajectory_stats`); every rank returns the same
        Analysis. ``wtraj analyze`` under torchrun passes the world group.
    on_open : callable, optional
        Called with the opened checkpoints (:func:`wtraj.open`) before the
        pass reads them: ``wtraj analyze`` starts its figure workers there
        when the pass is long enough to hide their start.

    Returns
    -------
    Analysis
        The result: ``.runs``, ``.to_dataframe(kind)``, ``.plot(kind)``,
        ``.save(folder)`` (the folder ``wtraj analyze --out`` writes), and an
        HTML summary in Jupyter.

    Raises
    ------
    FileNotFoundError, ValueError
        Paths that do not exist, hold no checkpoints, or checkpoints that
        disagree; too few checkpoints (at least 2 are needed); bad options.
    """
    import wtraj
    from wtraj._memory import resolve_memory_budget

    if runs_from not in RUNS_FROM:
        raise ValueError(f"runs_from={runs_from!r}: choose one of {', '.join(RUNS_FROM)}.")
    if runs_from == "inputs" and n_runs is not None:
        raise ValueError("give either a number of runs or runs_from='inputs', not both.")
    if n_runs is not None and (isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1):
        raise ValueError(f"n_runs must be a positive number of runs; got {n_runs!r}.")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    inputs = [str(p) for p in paths]
    budget = None if memory_budget is None else resolve_memory_budget(memory_budget)
    files, names, groups = _discovered(inputs, pass_group(group))
    if len(files) < 2:
        raise ValueError(
            f"{inputs[0]}: found {len(files)} checkpoint; a trajectory needs at least 2 "
            "(use `wtraj diff` to compare two files)."
        )
    checkpoints = wtraj.open(
        files,
        include=include,
        exclude=exclude,
        memory_budget=budget,
        allow_outside_shards=allow_outside_shards,
    )
    if on_open is not None:
        on_open(checkpoints)
    stats = wtraj.trajectory_stats(
        checkpoints, by_layer=True, backend=backend, memory_budget=budget, progress=progress, group=group
    )
    D = stats.distances
    if runs_from == "inputs":
        given = list(dict.fromkeys(groups))
        labels = np.array([given.index(g) for g in groups], dtype=np.int64)
    else:
        labels = _copies_follow_their_folder(D, _run_labels(D, n_runs, stats.norms), groups)
    tree = wtraj.trajectory_tree(D, metric="precomputed", norms=stats.norms)
    shared = _shared_checkpoints(D, labels)
    runs = [
        _run(label, np.flatnonzero(labels == label), stats, names, groups, shared)
        for label in np.unique(labels).tolist()
    ]
    runs = _with_shifts(runs, D, labels)
    return Analysis(
        inputs=inputs,
        run_inputs=[given for given in inputs if _stands_for_a_run(given)],
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
        shared=shared,
        embedding=classical_mds(D, 3),
        skipped_tensors=dict(getattr(checkpoints, "skipped", {})),
    )


def _discovered(inputs: list[str], ranks: PassGroup | None) -> tuple[list[Path], list[str], list[str]]:
    """:func:`discover_checkpoints`; in a group, the same files on every rank, or an error on all."""
    if ranks is None:
        return discover_checkpoints(inputs)
    found, error = None, None
    try:
        found = discover_checkpoints(inputs)
    except Exception as caught:
        error = caught
    ranks.agree(error, "wtraj: finding the checkpoints")
    seen = ranks.gather(found[1], "wtraj: comparing the checkpoints found")
    for rank, names in enumerate(seen):
        if names != seen[0]:
            raise ValueError(
                f"rank {rank} found other checkpoints than rank 0 ({len(names)} against "
                f"{len(seen[0])}): every rank must see the same files."
            )
    return found


def _stands_for_a_run(given: str) -> bool:
    """A folder or a Hub revision pattern: several checkpoints the user grouped as one run."""
    from wtraj.checkpoints import hub

    if hub.is_hub_path(given):
        _, revision = hub.parse(given)
        return revision is not None and any(c in revision for c in "*?[")
    return Path(given).is_dir()


def _run_labels(D: np.ndarray, n_runs: int | None, norms: np.ndarray) -> np.ndarray:
    import wtraj

    if n_runs == 1:
        return np.zeros(D.shape[0], dtype=np.int64)
    # the norms from the same pass tell runs of different starts apart by their angle
    labels = wtraj.separate_trajectories(D, n_runs, metric="precomputed", norms=norms)
    return np.asarray(labels, dtype=np.int64)


def _identical_groups(D: np.ndarray) -> list[np.ndarray]:
    """Rows of each set of identical checkpoints (distance exactly 0), sets of 2 or more.

    Exact zeros only: a distance of distinct checkpoints is a sum of squares of
    nonzero differences, never 0.
    """
    seen = np.zeros(D.shape[0], dtype=bool)
    groups = []
    for row in range(D.shape[0]):
        if not seen[row]:
            same = np.flatnonzero(D[row] == 0)
            seen[same] = True
            if len(same) > 1:
                groups.append(same)
    return groups


def _copies_follow_their_folder(D: np.ndarray, labels: np.ndarray, groups: list[str]) -> np.ndarray:
    """Each copy of an identical checkpoint in the run that holds most of its own folder.

    Runs started from one initialisation usually each save it, so the same
    weights sit in several run folders. The distances cannot tell the copies
    apart (separation often puts them all in one run, leaving the other runs
    without their start); the folder a copy was found in is the only
    information, so each copy goes to the run of most other checkpoints of
    its folder.
    """
    labels = labels.copy()
    for same in _identical_groups(D):
        for row in same:
            others = [r for r, g in enumerate(groups) if g == groups[row] and r not in same]
            if others:
                values, counts = np.unique(labels[others], return_counts=True)
                labels[row] = values[np.argmax(counts)]
    return labels


def _shared_checkpoints(D: np.ndarray, labels: np.ndarray) -> list[SharedCheckpoint]:
    """Sets of identical checkpoints that lie in different runs (e.g. a shared initialisation)."""
    shared = []
    for same in _identical_groups(D):
        runs = sorted({int(labels[r]) for r in same})
        if len(runs) > 1:
            shared.append(SharedCheckpoint(rows=tuple(int(r) for r in same), runs=tuple(runs)))
    return shared


def _run(
    label: int,
    rows: np.ndarray,
    stats: Any,
    names: list[str],
    groups: list[str],
    shared: list[SharedCheckpoint],
) -> Run:
    import wtraj

    D = stats.distances
    sub = D[np.ix_(rows, rows)]
    if _n_distinct(sub) >= 3:
        local, confidence = wtraj.order_checkpoints(
            sub, metric="precomputed", norms=stats.norms[rows], return_confidence=True
        )
        order = rows[np.asarray(local)]
    else:
        order, confidence = rows, math.nan
    steps, angles, exact = _path_along(order, stats)
    change = np.empty((len(stats.layers), max(len(order) - 1, 0)))
    for i, layer in enumerate(stats.layers.values()):
        before = layer.norms[order[:-1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            change[i] = np.where(before > 0, layer.distances[order[:-1], order[1:]] / before, np.nan)
    position_of = {int(row): position for position, row in enumerate(order)}
    return Run(
        label=int(label),
        order=order,
        checkpoints=[names[row] for row in order],
        inputs=list(dict.fromkeys(groups[row] for row in order)),
        direction_confidence=float(confidence),
        step_norms=steps,
        turning_angles=angles,
        distance_from_start=D[order[0], order],
        exact_path=exact,
        shifts=[],
        layer_relative_change=change,
        shared=[
            {
                "position": position_of[row],
                "checkpoint": names[row],
                "with_runs": [r for r in group.runs if r != label],
            }
            for group in shared
            if label in group.runs
            for row in group.rows
            if row in position_of
        ],
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
    from wtraj.analysis._geometry import turning_angle

    D = stats.distances
    steps = D[order[:-1], order[1:]]
    # from the triangle of three checkpoints (Kahan's formula, stable for small turns)
    angles = turning_angle(steps[:-1], steps[1:], D[order[:-2], order[2:]])
    return np.array(steps, dtype=float), np.asarray(angles, dtype=float), False


def _with_shifts(runs: list[Run], D: np.ndarray, labels: np.ndarray) -> list[Run]:
    """The runs with their shift and slowdown events from :func:`wtraj.detect_shifts`."""
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
