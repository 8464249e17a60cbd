"""Write an :class:`~wtraj.report.analysis.Analysis` to a report folder, atomically.

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

from wtraj.report import html, plots
from wtraj.report.analysis import Analysis
from wtraj.report.writer import OutputFolder, strict_json

# bump when a key of metrics.json changes meaning or disappears
SCHEMA_VERSION = 1
# a CSV cell starting with one of these runs as a formula in a spreadsheet (OWASP, "CSV Injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_report(
    analysis: Analysis, out: str | os.PathLike, *, inputs: list[str], overwrite: bool = False
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

    Returns
    -------
    Path
        The report folder.
    """
    with OutputFolder(out, overwrite=overwrite, inputs=inputs) as folder:
        figures = _figures(analysis)
        for name, (png, _, _) in figures.items():
            folder.write_bytes(name, png)
        metrics = _metrics(analysis, inputs, sorted(figures))
        folder.write_text("metrics.json", json.dumps(strict_json(metrics), indent=1, allow_nan=False))
        folder.write_text("steps.csv", _steps_csv(analysis))
        folder.write_text("layers.csv", _layers_csv(analysis))
        with open(folder.path("distances.npy"), "wb") as f:
            np.save(f, analysis.stats.distances)
        folder.write_text("report.html", _page(analysis, inputs, figures))
    return Path(out)


def run_label(analysis: Analysis, run_index: int) -> str:
    run = analysis.runs[run_index]
    return f"run {run.label} ({len(run.order)} ckpts)"


def _figures(analysis: Analysis) -> dict[str, tuple[bytes, str, str]]:
    """File name -> (PNG bytes, caption, alt text)."""
    labels = [run_label(analysis, i) for i in range(len(analysis.runs))]
    orders = [run.order for run in analysis.runs]
    shifts = [_positions(run, "shift") for run in analysis.runs]
    slowdowns = [_positions(run, "slowdown") for run in analysis.runs]
    curves = [
        plots.RunCurve(label, run.step_norms, run.turning_angles, run.distance_from_start, shift, slowdown)
        for label, run, shift, slowdown in zip(labels, analysis.runs, shifts, slowdowns, strict=True)
    ]
    emb = analysis.embedding
    grouping = "recovered run" if analysis.runs_from == "recovered" else "input path"
    figures = {
        "steps.png": (
            plots.steps_figure(curves),
            "Step norm (log scale), turning angle between consecutive steps, and distance from "
            "the first checkpoint, along each run's recovered order. Dashed lines: detected "
            "shifts (the step length jumps); dotted: slowdowns (it drops).",
            "step norm, turning angle and distance from start per run",
        ),
        "distances.png": (
            plots.distance_heatmap_figure(analysis.stats.distances, orders, labels, grouping),
            f"Euclidean distances between all checkpoints, grouped by {grouping} (white lines) "
            "and in recovered order, earliest first, within each group.",
            "pairwise distance heatmap",
        ),
        "embedding_2d.png": (
            plots.embedding_figure(emb.coordinates, emb.explained_variance_ratio, orders, labels, 2),
            "Classical MDS of the distance matrix (the PCA of the checkpoints, computed from "
            "distances only): each run a line, light to dark from first to last checkpoint.",
            "2-D embedding of all trajectories",
        ),
        "embedding_3d.png": (
            plots.embedding_figure(emb.coordinates, emb.explained_variance_ratio, orders, labels, 3),
            "The same embedding in its first three axes.",
            "3-D embedding of all trajectories",
        ),
        "layers.png": (
            plots.layer_change_figure(
                analysis.layer_names,
                [run.layer_relative_change for run in analysis.runs],
                labels,
                shifts,
                slowdowns,
            ),
            "Relative change of each layer (tensor) per step, ‖Δθₗ‖ / ‖θₗ‖, log colour scale; "
            "blank cells are steps where the layer did not change. Dashed / dotted lines: shifts / "
            "slowdowns.",
            "per-layer change heatmap",
        ),
    }
    return {name: (plots.png_bytes(fig), caption, alt) for name, (fig, caption, alt) in figures.items()}


def _positions(run, kind: str) -> list[int]:
    return [event["position"] for event in run.shifts if event["kind"] == kind]


def _metrics(analysis: Analysis, inputs: list[str], figure_files: list[str]) -> dict:
    import wtraj

    stats = analysis.stats
    emb = analysis.embedding
    run_of = {int(row): run.label for run in analysis.runs for row in run.order}
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
            }
            for run in analysis.runs
        ],
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


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def csv_text(value: str) -> str:
    """A text cell that spreadsheets show as text, never run as a formula.

    A cell starting with ``= + - @``, a tab or a carriage return (a tensor or
    file name can) gets a single quote in front, as OWASP recommends; the csv
    module quotes the cell when it holds a quote, comma or line break.
    """
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _number(x: float) -> str:
    return "" if not math.isfinite(x) else repr(float(x))


def _steps_csv(analysis: Analysis) -> str:
    rows = []
    for run in analysis.runs:
        event_at = {s["position"]: s for s in run.shifts}
        for position, row in enumerate(run.order):
            step = run.step_norms[position - 1] if position >= 1 else math.nan
            has_angle = 1 <= position <= len(run.turning_angles)
            angle = math.degrees(run.turning_angles[position - 1]) if has_angle else math.nan
            rows.append(
                [
                    run.label,
                    position,
                    int(row),
                    csv_text(analysis.names[row]),
                    _number(step),
                    _number(angle),
                    _number(run.distance_from_start[position]),
                    event_at[position]["kind"] if position in event_at else "",
                    _number(event_at[position]["score"] if position in event_at else math.nan),
                ]
            )
    header = [
        "run", "position", "checkpoint", "name", "step_norm", "turning_angle_deg",
        "distance_from_start", "event", "event_score",
    ]  # fmt: skip
    return _csv(header, rows)


def _layers_csv(analysis: Analysis) -> str:
    rows = []
    layers = analysis.stats.layers
    for run in analysis.runs:
        for position in range(1, len(run.order)):
            a, b = int(run.order[position - 1]), int(run.order[position])
            for i, layer in enumerate(layers):
                rows.append(
                    [
                        run.label,
                        position,
                        b,
                        csv_text(layer.name),
                        _number(layer.distances[a, b]),
                        _number(run.layer_relative_change[i, position - 1]),
                    ]
                )
    header = ["run", "position", "checkpoint", "layer", "step_norm", "relative_change"]
    return _csv(header, rows)


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
    run_rows = []
    for i, run in enumerate(analysis.runs):
        inputs_of_run = sorted({analysis.groups[r] for r in run.order})
        run_rows.append(
            [
                run_label(analysis, i),
                analysis.names[run.order[0]],
                analysis.names[run.order[-1]],
                "—" if math.isnan(run.direction_confidence) else f"{run.direction_confidence:.3f}",
                f"{np.nansum(run.step_norms):.4g}",
                f"{run.distance_from_start[-1]:.4g}",
                ", ".join(f"{s['kind']} at {analysis.names[s['checkpoint']]}" for s in run.shifts) or "none",
                ", ".join(inputs_of_run),
            ]
        )
    runs = html.Table(
        [
            "run", "first", "last", "direction confidence", "path length",
            "start → end distance", "events", "input paths",
        ],
        run_rows,
        numeric=(3, 4, 5),
    )  # fmt: skip
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
        html.Section("Summary", tables=[summary]),
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
