"""The report's tables as header and rows: written to the CSV files and given to pandas.

One definition per table, so that ``steps.csv`` and ``Analysis.to_dataframe("steps")``
cannot drift apart. Missing values are NaN (an empty cell in the CSV files).
Angles are in degrees here (``turning_angle_deg``), as in the figures; the
API and ``metrics.json`` (``turning_angles_rad``) keep radians.
"""

from __future__ import annotations

import math

import numpy as np

from wtraj.result import TABLE_KINDS


def table(analysis, kind: str) -> tuple[list[str], list[list]]:
    """``(header, rows)`` of the table ``kind`` ("steps", "layers", "runs" or "events")."""
    if kind not in TABLE_KINDS:
        raise ValueError(f"kind={kind!r}: choose one of {', '.join(map(repr, TABLE_KINDS))}.")
    return {"steps": _steps, "layers": _layers, "runs": _runs, "events": _events}[kind](analysis)


def _steps(analysis) -> tuple[list[str], list[list]]:
    header = [
        "run", "position", "checkpoint", "name", "step_norm", "turning_angle_deg",
        "distance_from_start", "event", "event_score", "shared_with_runs",
    ]  # fmt: skip
    rows = []
    for run in analysis.runs:
        event_at = {s["position"]: s for s in run.shifts}
        shared_at = {s["position"]: s for s in run.shared}
        for position, row in enumerate(run.order):
            step = run.step_norms[position - 1] if position >= 1 else math.nan
            has_angle = 1 <= position <= len(run.turning_angles)
            angle = math.degrees(run.turning_angles[position - 1]) if has_angle else math.nan
            event = event_at.get(position)
            shared = shared_at.get(position)
            rows.append(
                [
                    run.label,
                    position,
                    int(row),
                    analysis.names[row],
                    float(step),
                    angle,
                    float(run.distance_from_start[position]),
                    event["kind"] if event else "",
                    event["score"] if event else math.nan,
                    " ".join(str(r) for r in shared["with_runs"]) if shared else "",
                ]
            )
    return header, rows


def _layers(analysis) -> tuple[list[str], list[list]]:
    header = ["run", "position", "checkpoint", "layer", "step_norm", "relative_change"]
    rows = []
    for run in analysis.runs:
        for position in range(1, len(run.order)):
            a, b = int(run.order[position - 1]), int(run.order[position])
            for i, layer in enumerate(analysis.stats.layers.values()):
                rows.append(
                    [
                        run.label,
                        position,
                        b,
                        layer.name,
                        float(layer.distances[a, b]),
                        float(run.layer_relative_change[i, position - 1]),
                    ]
                )
    return header, rows


def _runs(analysis) -> tuple[list[str], list[list]]:
    header = [
        "run", "n_checkpoints", "first", "last", "direction_confidence", "path_length",
        "final_distance_from_start", "n_shifts", "n_slowdowns", "inputs", "shared_checkpoints",
    ]  # fmt: skip
    rows = [
        [
            run.label,
            len(run.order),
            run.checkpoints[0],
            run.checkpoints[-1],
            run.direction_confidence,
            float(np.nansum(run.step_norms)),
            float(run.distance_from_start[-1]),
            sum(s["kind"] == "shift" for s in run.shifts),
            sum(s["kind"] == "slowdown" for s in run.shifts),
            " ".join(run.inputs),
            " ".join(s["checkpoint"] for s in run.shared),
        ]
        for run in analysis.runs
    ]
    return header, rows


def _events(analysis) -> tuple[list[str], list[list]]:
    header = ["run", "position", "checkpoint", "name", "kind", "score"]
    rows = [
        [run.label, s["position"], s["checkpoint"], analysis.names[s["checkpoint"]], s["kind"], s["score"]]
        for run in analysis.runs
        for s in run.shifts
    ]
    return header, rows
