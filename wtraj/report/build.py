"""Write an :class:`~wtraj.result.Analysis` to a report folder, atomically.

Files written (all or none, see :mod:`wtraj.report.writer`):

==================  ============================================================
``metrics.json``    every number, machine-readable (``schema_version`` below)
``steps.csv``       one row per checkpoint per run, in recovered order
``layers.csv``      one row per checkpoint per run per layer
``distances.npy``   the (N, N) float64 euclidean distance matrix, input row order
``*.png``           the figures
``report.html``     one self-contained page with the figures embedded
==================  ============================================================
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from wtraj.report import html
from wtraj.report.figure_pool import FigurePool
from wtraj.report.figures import FIGURES, caption, report_figure
from wtraj.report.summary import runs_table
from wtraj.report.tables import table
from wtraj.report.writer import OutputFolder, strict_json
from wtraj.result import Analysis

# bump when a key of metrics.json changes meaning or disappears
SCHEMA_VERSION = 1
# a CSV cell starting with one of these runs as a formula in a spreadsheet (OWASP, "CSV Injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_report(
    analysis: Analysis,
    out: str | os.PathLike,
    *,
    inputs: list[str],
    overwrite: bool = False,
    pool: FigurePool | None = None,
) -> Path:
    """Write every output file of ``wtraj analyze`` into the folder ``out``.

    Parameters
    ----------
    analysis : Analysis
    out : path
        The report folder; it must not exist unless ``overwrite``.
    inputs : list of str
        The paths the user gave (recorded in ``metrics.json`` and the page); the
        report may not be, hold or lie inside one of them.
    overwrite : bool
        Replace an existing report that wtraj wrote (see :func:`wtraj.report.output_target.prepare_output`).
    pool : FigurePool, optional
        Worker processes that draw the figures while the tables are written;
        the files are the same without (every figure drawn here).

    Returns
    -------
    Path
        The report folder.
    """
    with OutputFolder(out, overwrite=overwrite, inputs=inputs) as folder:
        if pool is not None:
            pool.send(analysis, list(FIGURES))
        metrics = _metrics(analysis, inputs, sorted(FIGURES))
        folder.write_text("metrics.json", json.dumps(strict_json(metrics), indent=1, allow_nan=False))
        folder.write_text("steps.csv", _csv(analysis, "steps"))
        folder.write_text("layers.csv", _csv(analysis, "layers"))
        with open(folder.path("distances.npy"), "wb") as f:
            np.save(f, analysis.stats.distances)
        drawn = pool.collect() if pool is not None else {}
        figures = {}
        for name in FIGURES:
            png = drawn[name] if name in drawn else _png(analysis, name)
            folder.write_bytes(name, png)
            figures[name] = (png, *caption(analysis, name))
        folder.write_text("report.html", _page(analysis, inputs, figures))
    return Path(out)


def _png(analysis: Analysis, name: str) -> bytes:
    """The figure ``name`` drawn in this process, as PNG bytes."""
    from wtraj.report import plots

    return plots.png_bytes(report_figure(analysis, name))


def _metrics(analysis: Analysis, inputs: list[str], figure_files: list[str]) -> dict:
    import wtraj

    stats = analysis.stats
    emb = analysis.embedding
    run_of = {int(row): run.label for run in analysis.runs for row in run.order}
    disagreement = analysis.folder_disagreement
    return {
        "schema": "wtraj.analyze",
        "schema_version": SCHEMA_VERSION,
        "wtraj_version": wtraj.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            "paths": inputs,
            "n_checkpoints": len(analysis.names),
            "n_params": analysis.n_params,
            "n_layers": len(analysis.layer_names),
            "skipped_tensors": analysis.skipped_tensors,
        },
        "runs_from": analysis.runs_from,
        "checkpoints": [
            {
                "index": i,
                "name": name,
                "input": analysis.groups[i],
                "run": run_of[i],
                "norm": float(stats.norms[i]),
                "tree_parent": None if analysis.tree_parent is None else int(analysis.tree_parent[i]),
            }
            for i, name in enumerate(analysis.names)
        ],
        "runs": [
            {
                "run": run.label,
                "n_checkpoints": len(run.order),
                "order": run.order.tolist(),
                "order_names": [analysis.names[i] for i in run.order],
                "direction_confidence": run.direction_confidence,
                "path_length": float(np.nansum(run.step_norms)),
                "final_distance_from_start": float(run.distance_from_start[-1]),
                "step_norms": run.step_norms.tolist(),
                "turning_angles_rad": run.turning_angles.tolist(),
                "distance_from_start": run.distance_from_start.tolist(),
                "path_from_exact_sums": run.exact_path,
                "shifts": run.shifts,
                "inputs": run.inputs,
                "shared": run.shared,
            }
            for run in analysis.runs
        ],
        "shared_checkpoints": [
            {
                "rows": list(group.rows),
                "names": [analysis.names[r] for r in group.rows],
                "runs": list(group.runs),
            }
            for group in analysis.shared
        ],
        "folder_disagreement": {
            "split": [{"folder": f, "runs": runs} for f, runs in disagreement["split"].items()],
            "merged": [{"run": run, "folders": folders} for run, folders in disagreement["merged"].items()],
        },
        "notes": analysis.notes(),
        "layers": [
            {"name": name, "shape": list(shape)}
            for name, shape in zip(analysis.layer_names, analysis.layer_shapes, strict=True)
        ],
        "embedding": {
            "method": "classical MDS of the euclidean distance matrix",
            "explained_variance_ratio": emb.explained_variance_ratio.tolist(),
            "coordinates": emb.coordinates.tolist(),
        },
        "files": {
            "distances": "distances.npy",
            "steps": "steps.csv",
            "layers": "layers.csv",
            "figures": figure_files,
            "report": "report.html",
        },
    }


def _csv(analysis: Analysis, kind: str) -> str:
    header, rows = table(analysis, kind)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def _cell(value):
    """NaN and infinities as empty cells; floats in full precision; text that spreadsheets never run."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, str):
        return csv_text(value)
    return value


def csv_text(value: str) -> str:
    """A text cell that spreadsheets show as text, never run as a formula.

    A cell starting with ``= + - @``, a tab or a carriage return (a tensor or
    file name can) gets a single quote in front, as OWASP recommends; the csv
    module quotes the cell when it holds a quote, comma or line break.
    """
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _page(analysis: Analysis, inputs: list[str], figures: dict) -> str:
    import wtraj

    n = len(analysis.names)
    summary = html.Table(
        ["quantity", "value"],
        [
            ["inputs", ", ".join(inputs)],
            ["checkpoints", str(n)],
            ["parameters per checkpoint", f"{analysis.n_params:,}"],
            ["layers (tensors)", str(len(analysis.layer_names))],
            [
                "runs",
                f"{len(analysis.runs)} "
                + (
                    "(recovered from the distances)"
                    if analysis.runs_from == "recovered"
                    else "(one per input path)"
                ),
            ],
            [
                "variance in 2 / 3 MDS axes",
                "{:.1f} % / {:.1f} %".format(
                    *(100 * np.cumsum(analysis.embedding.explained_variance_ratio)[1:3])
                ),
            ],
        ],
    )
    runs = runs_table(analysis)
    blocks = [html.FigureBlock(png, caption, alt) for png, caption, alt in figures.values()]
    notes = [
        "Distances are L2 norms over all floating-point parameters (tensors skipped: "
        + (", ".join(analysis.skipped_tensors) or "none")
        + "). Step norms and turning angles come from float64 sums of exact differences "
        "where a run's recovered order follows the input order; otherwise from the distance "
        "matrix (metrics.json: path_from_exact_sums).",
        "Direction confidence: the probability-like score of wtraj.order_checkpoints that the "
        "run's first checkpoint is its start (0.5 = undecided).",
    ]
    sections = [
        html.Section("Summary", tables=[summary], notes=analysis.notes()),
        html.Section("Runs", tables=[runs]),
        html.Section("Figures", figures=blocks),
        html.Section(
            "Files",
            paragraphs=[
                "metrics.json (every number, schema_version "
                f"{SCHEMA_VERSION}), steps.csv, layers.csv, distances.npy (N×N, input order), "
                + ", ".join(figures)
            ],
            notes=notes,
        ),
    ]
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return html.render(
        "wtraj trajectory report",
        f"wtraj {wtraj.__version__} · {created} · {n} checkpoints",
        sections,
    )
