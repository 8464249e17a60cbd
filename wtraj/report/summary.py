"""The compact HTML summary of an analysis that Jupyter shows (``Analysis._repr_html_``)."""

from __future__ import annotations

import math

import numpy as np

from wtraj.report import html
from wtraj.report.figures import steps

# a thumbnail: the full figure at 60 dpi is about 400 px wide
THUMBNAIL_DPI = 60


def runs_table(analysis, path_width: int = 40) -> html.Table:
    """One row per run: span, direction confidence, length, events, shared checkpoints, inputs."""
    rows = []
    for run in analysis.runs:
        confidence = run.direction_confidence
        rows.append(
            [
                f"run {run.label}",
                str(len(run.order)),
                run.checkpoints[0],
                run.checkpoints[-1],
                "—" if math.isnan(confidence) else f"{confidence:.3f}",
                f"{np.nansum(run.step_norms):.4g}",
                f"{run.distance_from_start[-1]:.4g}",
                ", ".join(f"{s['kind']} at {analysis.names[s['checkpoint']]}" for s in run.shifts) or "none",
                "; ".join(
                    f"{s['checkpoint']} (also in {', '.join(f'run {r}' for r in s['with_runs'])})"
                    for s in run.shared
                )
                or "none",
                ", ".join(short_path(p, path_width) for p in run.inputs),
            ]
        )
    header = [
        "run", "checkpoints", "first", "last", "direction confidence", "path length (L2)",
        "start → end distance (L2)", "events", "shared checkpoints", "input paths",
    ]  # fmt: skip
    return html.Table(header, rows, numeric=(1, 4, 5, 6), keep=(0,))


def short_path(path: str, width: int) -> str:
    """``path`` cut to its last characters when longer than ``width`` (the end names the run)."""
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def summary_html(analysis) -> str:
    figure = steps(analysis)
    buffer_png = _thumbnail(figure)
    headline = (
        f"{len(analysis.names)} checkpoints × {analysis.n_params:,} parameters, {len(analysis.runs)} run(s) "
        + ("recovered from the distances" if analysis.runs_from == "recovered" else "(one per input path)")
    )
    section = html.Section(
        "wtraj analysis",
        paragraphs=[headline],
        tables=[runs_table(analysis)],
        figures=[
            html.FigureBlock(
                buffer_png, "Step norm, turning angle (degrees) and distance from start.", "steps"
            )
        ],
        notes=analysis.notes(),
    )
    return f'<div class="wtraj-analysis">{html.fragment([section], heading="h4")}</div>'


def _thumbnail(figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=THUMBNAIL_DPI, bbox_inches="tight")
    return buffer.getvalue()
