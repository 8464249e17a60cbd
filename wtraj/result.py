"""What :func:`wtraj.analyze` returns: the runs, and ways to look at them (tables, figures, a report).

The numbers are computed by :mod:`wtraj.pipeline`; this module holds them and
hands them to :mod:`wtraj.report` to be drawn or written. Nothing heavy is
imported until asked for: pandas for :meth:`Analysis.to_dataframe`,
matplotlib for :meth:`Analysis.plot`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TABLE_KINDS = ("steps", "layers", "runs", "events")
PLOT_KINDS = ("steps", "distances", "embedding", "layers")


@dataclass(frozen=True)
class SharedCheckpoint:
    """Identical checkpoints (distance exactly 0) found in several runs, e.g. a shared initialisation.

    Attributes
    ----------
    rows : tuple of int
        The identical checkpoints' rows (input order).
    runs : tuple of int
        The runs they belong to.
    """

    rows: tuple[int, ...]
    runs: tuple[int, ...]


@dataclass(frozen=True)
class Run:
    """One training run as recovered (or as given, with ``runs_from="inputs"``).

    Attributes
    ----------
    label : int
        Run number (``separate_trajectories``' label, or the input's index).
    order : ndarray of int, shape (n,)
        Checkpoint rows in recovered training order, earliest first.
    checkpoints : list of str
        Their names, in the same order.
    inputs : list of str
        The input paths its checkpoints came from.
    direction_confidence : float
        ``order_checkpoints``' confidence that ``order[0]`` is the start (0.5:
        undecided); NaN when the run has fewer than 3 distinct checkpoints
        (input order kept).
    step_norms : ndarray, shape (n-1,)
        ``||θ_{i+1} - θ_i||`` along the order (L2).
    turning_angles : ndarray, shape (n-2,)
        Radians, in ``[0, π]``.
    distance_from_start : ndarray, shape (n,)
        ``||θ_i - θ_0||``.
    exact_path : bool
        True when step norms and angles come from the float64 path sums
        (the recovered order follows the input order).
    shifts : list of dict
        Events of :func:`wtraj.detect_shifts`: ``{"position": ..., "checkpoint": row,
        "kind": "shift" or "slowdown", "score": ...}``.
    layer_relative_change : ndarray, shape (n_layers, n-1)
        ``||Δθ_l|| / ||θ_l||`` per layer and step (the norm before the step).
    shared : list of dict
        Checkpoints of this run identical to checkpoints of other runs:
        ``{"position": ..., "checkpoint": name, "with_runs": [labels]}``.
    """

    label: int
    order: np.ndarray
    checkpoints: list[str]
    inputs: list[str]
    direction_confidence: float
    step_norms: np.ndarray
    turning_angles: np.ndarray
    distance_from_start: np.ndarray
    exact_path: bool
    shifts: list[dict]
    layer_relative_change: np.ndarray
    shared: list[dict]

    def __repr__(self) -> str:
        confidence = "n/a" if math.isnan(self.direction_confidence) else f"{self.direction_confidence:.3f}"
        return (
            f"Run({self.label}: {len(self.order)} checkpoints, {self.checkpoints[0]} -> "
            f"{self.checkpoints[-1]}, direction confidence {confidence}, "
            f"{len(self.shifts)} event(s), {len(self.shared)} shared checkpoint(s))"
        )


@dataclass(frozen=True, repr=False)
class Analysis:
    """Everything ``wtraj analyze`` reports, as returned by :func:`wtraj.analyze`.

    Look at it with :meth:`to_dataframe` (tables), :meth:`plot` (figures) and
    :meth:`save` (the report folder of ``wtraj analyze``); in Jupyter it shows
    an HTML summary.
    """

    # the paths the user gave
    inputs: list[str]
    # those that stand for a run (folders, hf://...@pattern), not for one checkpoint
    run_inputs: list[str]
    # one per row, in input order
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
    shared: list[SharedCheckpoint]
    embedding: Any
    skipped_tensors: dict[str, str]

    @property
    def folder_disagreement(self) -> dict[str, dict]:
        """Where the recovered runs differ from the input folders.

        Returns
        -------
        dict
            ``{"split": {folder: [run labels]}, "merged": {run label: [folders]}}``;
            both empty when every folder is exactly one run (always with
            ``runs_from="inputs"``). Only folders count as groupings (files
            given one by one do not; nor do single Hub revisions), and a checkpoint identical to one in
            another run (a shared start) does not make its folder split.
        """
        split: dict[str, list[int]] = {}
        merged: dict[int, list[str]] = {}
        if self.runs_from != "recovered":
            return {"split": split, "merged": merged}
        shared_rows = {row for group in self.shared for row in group.rows}
        folders = [g for g in dict.fromkeys(self.groups) if g in self.run_inputs]
        for folder in folders:
            rows = [r for r, g in enumerate(self.groups) if g == folder]
            own = [r for r in rows if r not in shared_rows] or rows
            runs = sorted({int(self.labels[r]) for r in own})
            if len(runs) > 1:
                split[folder] = runs
        for run in self.runs:
            own = [int(r) for r in run.order if int(r) not in shared_rows] or [int(r) for r in run.order]
            found = list(dict.fromkeys(self.groups[r] for r in own if self.groups[r] in folders))
            if len(found) > 1:
                merged[run.label] = found
        return {"split": split, "merged": merged}

    def notes(self) -> list[str]:
        """Plain sentences on shared checkpoints and on runs that differ from the input folders."""
        notes = [self._shared_sentence(group) for group in self.shared]
        disagreement = self.folder_disagreement
        for folder, runs in disagreement["split"].items():
            counts = " + ".join(str(int(np.sum(self.labels[self._rows_of(folder)] == r))) for r in runs)
            notes.append(
                f"{folder} holds checkpoints of {len(runs)} recovered runs ({_and(runs, 'runs')}: "
                f"{counts} checkpoints): the distances do not make it one run."
            )
        for label, folders in disagreement["merged"].items():
            notes.append(
                f"run {label} joins checkpoints of {len(folders)} input folders ({', '.join(folders)}) "
                "into one run."
            )
        if disagreement["split"] or disagreement["merged"]:
            notes.append(
                "If each input folder is one run, --runs-from inputs (runs_from='inputs') "
                "keeps them as given."
            )
        return notes

    def _rows_of(self, folder: str) -> np.ndarray:
        return np.array([r for r, g in enumerate(self.groups) if g == folder], dtype=np.int64)

    def _shared_sentence(self, group: SharedCheckpoint) -> str:
        position = {int(row): p for run in self.runs for p, row in enumerate(run.order)}
        names = " = ".join(self.names[r] for r in group.rows)
        runs = _and(list(group.runs), "runs")
        if all(position[r] == 0 for r in group.rows):
            return f"{runs} start from the same checkpoint ({names})."
        return f"{runs} share a checkpoint ({names})."

    def __repr__(self) -> str:
        lines = [
            f"<wtraj Analysis: {len(self.names)} checkpoints x {self.n_params:,} parameters, "
            f"{len(self.runs)} run(s) ({'recovered' if self.runs_from == 'recovered' else 'one per input'})>"
        ]
        lines.extend(f"  {run!r}" for run in self.runs)
        lines.extend(f"  note: {note}" for note in self.notes())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from wtraj.report.summary import summary_html

        return summary_html(self)

    def to_dataframe(self, kind: str = "steps"):
        """One of the report's tables as a pandas DataFrame.

        Parameters
        ----------
        kind : {"steps", "layers", "runs", "events"}
            ``"steps"``: one row per checkpoint per run, in recovered order
            (the columns of ``steps.csv``); ``"layers"``: one row per step per
            layer (``layers.csv``); ``"runs"``: one row per run; ``"events"``:
            one row per detected shift or slowdown.

        Raises
        ------
        ImportError
            pandas is not installed (``pip install "wtraj[pandas]"``).
        """
        from wtraj.report.tables import table

        header, rows = table(self, kind)
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError(
                'Analysis.to_dataframe needs pandas: pip install "wtraj[pandas]" (or "wtraj[all]").'
            ) from error
        return pd.DataFrame(rows, columns=header)

    def plot(self, kind: str = "steps"):
        """One of the report's figures as a matplotlib Figure.

        Parameters
        ----------
        kind : {"steps", "distances", "embedding", "layers"}
            Step norm, turning angle (degrees) and distance from the start per
            run; the distance heatmap; the 2-D classical-MDS embedding; the
            per-layer relative change.
        """
        from wtraj.report.figures import figure

        return figure(self, kind)

    def save(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the report folder of ``wtraj analyze --out folder`` (all files or none).

        Parameters
        ----------
        folder : path
            Must not exist unless ``overwrite``.
        overwrite : bool
            Replace an existing report folder (as ``--overwrite``).

        Returns
        -------
        Path
            The folder.
        """
        from wtraj.report.build import write_report

        return write_report(self, folder, inputs=self.inputs, overwrite=overwrite)


def _and(items: list[Any], noun: str) -> str:
    """``"runs 0 and 1"``, ``"runs 0, 1 and 2"``."""
    text = [str(i) for i in items]
    if len(text) == 1:
        return f"{noun.rstrip('s')} {text[0]}"
    return f"{noun} {', '.join(text[:-1])} and {text[-1]}"
