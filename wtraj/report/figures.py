"""The report's figures, each with its caption, drawn from an analysis result.

matplotlib is imported only to draw: the names and captions are known
without it (``wtraj analyze`` draws the figures in worker processes,
:mod:`wtraj.report.figure_pool`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wtraj.result import PLOT_KINDS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def run_label(analysis, run_index: int) -> str:
    run = analysis.runs[run_index]
    return f"run {run.label} ({len(run.order)} ckpts)"


def _positions(run, kind: str) -> list[int]:
    return [event["position"] for event in run.shifts if event["kind"] == kind]


def figure(analysis, kind: str) -> Figure:
    """The figure ``kind``: "steps", "distances", "embedding" (2-D) or "layers"."""
    if kind not in PLOT_KINDS:
        raise ValueError(f"kind={kind!r}: choose one of {', '.join(map(repr, PLOT_KINDS))}.")
    return {
        "steps": steps,
        "distances": distances,
        "embedding": lambda a: embedding(a, 2),
        "layers": layers,
    }[kind](analysis)


def steps(analysis) -> Figure:
    from wtraj.report import plots

    curves = [
        plots.RunCurve(
            run_label(analysis, i),
            run.step_norms,
            run.turning_angles,
            run.distance_from_start,
            _positions(run, "shift"),
            _positions(run, "slowdown"),
        )
        for i, run in enumerate(analysis.runs)
    ]
    return plots.steps_figure(curves)


def grouping(analysis) -> str:
    return "recovered run" if analysis.runs_from == "recovered" else "input path"


def distances(analysis) -> Figure:
    from wtraj.report import plots

    labels = [run_label(analysis, i) for i in range(len(analysis.runs))]
    orders = [run.order for run in analysis.runs]
    return plots.distance_heatmap_figure(analysis.stats.distances, orders, labels, grouping(analysis))


def embedding(analysis, dims: int) -> Figure:
    from wtraj.report import plots

    emb = analysis.embedding
    labels = [run_label(analysis, i) for i in range(len(analysis.runs))]
    orders = [run.order for run in analysis.runs]
    return plots.embedding_figure(emb.coordinates, emb.explained_variance_ratio, orders, labels, dims)


def layers(analysis) -> Figure:
    from wtraj.report import plots

    return plots.layer_change_figure(
        analysis.layer_names,
        [run.layer_relative_change for run in analysis.runs],
        [run_label(analysis, i) for i in range(len(analysis.runs))],
        [_positions(run, "shift") for run in analysis.runs],
        [_positions(run, "slowdown") for run in analysis.runs],
    )


# file name -> (the figure, its caption, alt text), in the page's order; "{grouping}" in a
# caption is what the runs were grouped by
FIGURES = {
    "steps.png": (
        steps,
        "Step norm (L2, log scale), turning angle between consecutive steps (degrees), and "
        "distance from the first checkpoint (L2), along each run's recovered order. Dashed "
        "lines: detected shifts (the step length jumps); dotted: slowdowns (it drops).",
        "step norm, turning angle and distance from start per run",
    ),
    "distances.png": (
        distances,
        "Euclidean distances between all checkpoints, grouped by {grouping} (white lines) "
        "and in recovered order, earliest first, within each group.",
        "pairwise distance heatmap",
    ),
    "embedding_2d.png": (
        lambda analysis: embedding(analysis, 2),
        "Classical MDS of the distance matrix (the PCA of the checkpoints, computed from "
        "distances only): each run a line, light to dark from first to last checkpoint.",
        "2-D embedding of all trajectories",
    ),
    "embedding_3d.png": (
        lambda analysis: embedding(analysis, 3),
        "The same embedding in its first three axes.",
        "3-D embedding of all trajectories",
    ),
    "layers.png": (
        layers,
        "Relative change of each layer (tensor) per step, ‖Δθₗ‖ / ‖θₗ‖ (dimensionless), log "
        "colour scale; blank cells are steps where the layer did not change. Dashed / dotted "
        "lines: shifts / slowdowns.",
        "per-layer change heatmap",
    ),
}


def caption(analysis, name: str) -> tuple[str, str]:
    """The caption and alt text of the report's figure ``name`` (a key of :data:`FIGURES`)."""
    _, text, alt = FIGURES[name]
    return text.format(grouping=grouping(analysis)), alt


def report_figure(analysis, name: str) -> Figure:
    """The report's figure ``name`` (a key of :data:`FIGURES`)."""
    return FIGURES[name][0](analysis)


def report_figures(analysis) -> dict[str, tuple[Figure, str, str]]:
    """File name -> (figure, caption, alt text), every figure of the report."""
    return {name: (report_figure(analysis, name), *caption(analysis, name)) for name in FIGURES}
