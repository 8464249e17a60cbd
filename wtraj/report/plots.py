"""The report's figures, drawn from arrays with matplotlib's object API (Agg, no pyplot).

No function here reads checkpoints or runs the analysis: each takes the arrays
it draws, so figures can be made from any result (and tested on small arrays).
Time axes are checkpoint positions along a run's recovered order; detected
events are drawn on every one of them as vertical lines: dashed for shifts
(the step length jumps), dotted for slowdowns (it drops, e.g. a learning-rate decay).
All text is drawn as written: a ``$`` in a tensor name never starts mathtext.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

# names are data, not markup: "$x$" is shown as "$x$", and "w$^{$" does not fail to parse
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}
# settings under which Figure.set_layout_engine(None) removes the engine, whatever the user's rc
NO_AUTOLAYOUT = {"figure.autolayout": False, "figure.constrained_layout.use": False}
# inches: about 17 cm wide, the width of a report column or a full paper page
WIDTH = 6.8
DPI = 150
# zlib level: 3 encodes about 30 % faster than the default 6, for files about 2 % larger
PNG_COMPRESS_LEVEL = 3
SHIFT_STYLE = {"linestyle": "--", "linewidth": 1.0, "alpha": 0.8}
SLOWDOWN_STYLE = {"linestyle": ":", "linewidth": 1.2, "alpha": 0.8}


@dataclass(frozen=True)
class RunCurve:
    """One run along its recovered order: what the time-axis figures draw.

    Attributes
    ----------
    label : str
        Legend entry, e.g. ``"run 0 (12 ckpts)"``.
    step_norms : ndarray, shape (n-1,)
        ``||θ_{i+1} - θ_i||``; drawn at the checkpoint each step arrives at (1..n-1).
    turning_angles : ndarray, shape (n-2,)
        Radians; drawn at the middle checkpoint of each triple (1..n-2).
    distance_from_start : ndarray, shape (n,)
        ``||θ_i - θ_0||``.
    shifts : sequence of int
        Positions (0..n-1) of the checkpoints where a shift was detected.
    slowdowns : sequence of int
        Positions of detected slowdowns.
    """

    label: str
    step_norms: np.ndarray
    turning_angles: np.ndarray
    distance_from_start: np.ndarray
    shifts: Sequence[int] = field(default_factory=tuple)
    slowdowns: Sequence[int] = field(default_factory=tuple)


def run_colors(n_runs: int) -> list[tuple[float, float, float]]:
    """One distinct colour per run (tab10, then tab20, then evenly spaced hues)."""
    if n_runs <= 10:
        return [to_rgb(c) for c in colormaps["tab10"].colors[:n_runs]]
    if n_runs <= 20:
        return [to_rgb(c) for c in colormaps["tab20"].colors[:n_runs]]
    hsv = colormaps["hsv"]
    return [to_rgb(hsv(i / n_runs)) for i in range(n_runs)]


def _plain_text(draw: Callable) -> Callable:
    """``draw`` run with :data:`PLAIN_TEXT` settings, for the text it creates and renders."""

    @functools.wraps(draw)
    def plain(*args, **kwargs):
        with rc_context(PLAIN_TEXT):
            return draw(*args, **kwargs)

    return plain


@_plain_text
def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes at the report's resolution: the whole canvas, ``figsize * DPI`` pixels.

    The layout is computed once at that resolution and the figure drawn once
    (``savefig`` alone draws a figure that has a layout engine twice, the
    first time only to lay it out). Constrained layout keeps all the text
    inside the canvas, so no ``bbox_inches="tight"`` pass is needed either.
    """
    buffer = io.BytesIO()
    engine, dpi = figure.get_layout_engine(), figure.dpi
    figure.set_dpi(DPI)
    try:
        if engine is not None:
            engine.execute(figure)
            with rc_context(NO_AUTOLAYOUT):
                figure.set_layout_engine(None)
        figure.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    finally:
        if engine is not None:
            figure.set_layout_engine(engine)
        figure.set_dpi(dpi)
    return buffer.getvalue()


def _plain_log_labels(axis) -> None:
    """Label a log axis in plain text ("0.05", "1e−03"), which :data:`PLAIN_TEXT` draws as written.

    matplotlib's default log labels are mathtext (``$\\mathdefault{10^{-3}}$``),
    shown verbatim once math parsing is off.
    """
    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _mark_events(ax, shifts: Sequence[int], slowdowns: Sequence[int], color) -> None:
    for x in shifts:
        ax.axvline(x, color=color, **SHIFT_STYLE)
    for x in slowdowns:
        ax.axvline(x, color=color, **SLOWDOWN_STYLE)


def _event_legend_entries(any_shift: bool, any_slowdown: bool) -> list[Line2D]:
    entries = []
    if any_shift:
        entries.append(Line2D([], [], color="0.3", label="detected shift", **SHIFT_STYLE))
    if any_slowdown:
        entries.append(Line2D([], [], color="0.3", label="detected slowdown", **SLOWDOWN_STYLE))
    return entries


@_plain_text
def steps_figure(runs: Sequence[RunCurve]) -> Figure:
    """Step norm, turning angle and distance from the start over checkpoints, one line per run.

    Parameters
    ----------
    runs : sequence of RunCurve
        The runs, in legend order.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels sharing the x axis (checkpoint position along the recovered order).
    """
    figure = Figure(figsize=(WIDTH, 7.0), layout="constrained")
    ax_step, ax_angle, ax_dist = figure.subplots(3, 1, sharex=True)
    colors = run_colors(len(runs))
    for run, color in zip(runs, colors, strict=True):
        steps = np.asarray(run.step_norms, dtype=float)
        if steps.size:
            positive = np.where(steps > 0, steps, np.nan)
            ax_step.plot(np.arange(1, steps.size + 1), positive, "o-", ms=3, color=color, label=run.label)
        angles = np.degrees(np.asarray(run.turning_angles, dtype=float))
        if angles.size:
            ax_angle.plot(np.arange(1, angles.size + 1), angles, "o-", ms=3, color=color)
        dist = np.asarray(run.distance_from_start, dtype=float)
        ax_dist.plot(np.arange(dist.size), dist, "o-", ms=3, color=color)
        for ax in (ax_step, ax_angle, ax_dist):
            _mark_events(ax, run.shifts, run.slowdowns, color)
    if np.any([np.any(np.asarray(r.step_norms) > 0) for r in runs]):
        ax_step.set_yscale("log")
        _plain_log_labels(ax_step.yaxis)
    ax_step.set_ylabel("step norm\n‖θᵢ − θᵢ₋₁‖ (L2)")
    ax_angle.set_ylabel("turning angle\n(degrees)")
    ax_angle.set_ylim(0, 180)
    ax_angle.set_yticks([0, 45, 90, 135, 180])
    ax_angle.axhline(90, color="0.6", linewidth=0.8, zorder=0)
    ax_dist.set_ylabel("distance from first\ncheckpoint ‖θᵢ − θ₀‖ (L2)")
    ax_dist.set_xlabel("checkpoint position along the recovered training order")
    ax_dist.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax_step, ax_angle, ax_dist):
        ax.grid(True, alpha=0.3)
    handles, _ = ax_step.get_legend_handles_labels()
    handles += _event_legend_entries(any(len(r.shifts) for r in runs), any(len(r.slowdowns) for r in runs))
    ax_step.legend(handles=handles, fontsize="small", loc="best", ncols=2 if len(handles) > 5 else 1)
    ax_step.set_title("Trajectory geometry per run")
    return figure


@_plain_text
def distance_heatmap_figure(
    D: np.ndarray,
    runs: Sequence[np.ndarray],
    run_labels: Sequence[str],
    grouping: str = "recovered run",
) -> Figure:
    """The pairwise distance matrix, rows and columns grouped by run and in recovered order.

    Parameters
    ----------
    D : ndarray, shape (N, N)
        Euclidean distances between all checkpoints.
    runs : sequence of int ndarrays
        Checkpoint indices of each recovered run, earliest first.
    run_labels : sequence of str
        One label per run.
    grouping : str
        What the groups are, for the axis labels ("recovered run", "input folder").
    """
    permutation = np.concatenate([np.asarray(r, dtype=int) for r in runs])
    grouped = D[np.ix_(permutation, permutation)]
    figure = Figure(figsize=(WIDTH, WIDTH * 0.85), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(grouped, cmap="viridis", interpolation="nearest")
    colorbar = figure.colorbar(image, ax=ax, shrink=0.85)
    colorbar.set_label("euclidean distance ‖θᵢ − θⱼ‖ (L2)")
    bounds = np.cumsum([len(r) for r in runs])
    for b in bounds[:-1]:
        ax.axhline(b - 0.5, color="white", linewidth=1.5)
        ax.axvline(b - 0.5, color="white", linewidth=1.5)
    centres = bounds - np.array([len(r) for r in runs]) / 2 - 0.5
    if len(runs) <= 20:
        ax.set_xticks(centres, run_labels, rotation=30, ha="right", fontsize="small")
        ax.set_yticks(centres, run_labels, fontsize="small")
    ax.set_xlabel(f"checkpoints grouped by {grouping}, earliest first")
    ax.set_ylabel(f"checkpoints grouped by {grouping}, earliest first")
    ax.set_title("Pairwise distances between checkpoints")
    return figure


def _run_shades(color, n: int) -> np.ndarray:
    """``n`` shades of ``color`` from light (first checkpoint) to full (last)."""
    base = np.array(color)
    fractions = np.linspace(0.25, 1.0, n)[:, None] if n > 1 else np.ones((1, 1))
    return 1 - fractions * (1 - base)


@_plain_text
def embedding_figure(
    coordinates: np.ndarray,
    explained_variance_ratio: np.ndarray,
    runs: Sequence[np.ndarray],
    run_labels: Sequence[str],
    dims: int = 2,
) -> Figure:
    """All trajectories in the first 2 or 3 classical-MDS axes of the distance matrix.

    Each run is a line in its colour; its checkpoints are shaded from light
    (first) to full colour (last), the first marked with a circle and the last
    with a star.

    Parameters
    ----------
    coordinates : ndarray, shape (N, k)
        From :func:`wtraj.report.embedding.classical_mds`, ``k >= dims``.
    explained_variance_ratio : ndarray, shape (k,)
    runs : sequence of int ndarrays
        Checkpoint indices of each run, earliest first.
    run_labels : sequence of str
    dims : {2, 3}
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3; got {dims!r}.")
    figure = Figure(figsize=(WIDTH, WIDTH * 0.8), layout="constrained")
    ax = figure.add_subplot(projection="3d" if dims == 3 else None)
    colors = run_colors(len(runs))
    for run, label, color in zip(runs, run_labels, colors, strict=True):
        points = coordinates[np.asarray(run, dtype=int), :dims]
        ax.plot(*points.T, "-", color=color, linewidth=1.2, alpha=0.8, label=label)
        ax.scatter(*points.T, c=_run_shades(color, len(points)), s=18, edgecolors="none")
        ax.scatter(*points[0], marker="o", s=70, facecolors="none", edgecolors=color, linewidths=1.5)
        ax.scatter(*points[-1], marker="*", s=120, color=color, edgecolors="black", linewidths=0.5)
    axis_labels = [
        f"MDS {i + 1} ({100 * explained_variance_ratio[i]:.1f} % of variance)" for i in range(dims)
    ]
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if dims == 3:
        ax.set_zlabel(axis_labels[2])
        ax.tick_params(labelsize="x-small")
    else:
        ax.grid(True, alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="none",
            markeredgecolor="0.2",
            markersize=8,
            label="first checkpoint",
        ),
        Line2D([], [], marker="*", linestyle="", color="0.2", markersize=10, label="last checkpoint"),
    ]
    ax.legend(handles=handles, fontsize="small", loc="best", ncols=2 if len(handles) > 6 else 1)
    shown = 100 * float(np.sum(explained_variance_ratio[:dims]))
    ax.set_title(
        f"Trajectories in weight space: classical MDS of the distances ({dims}-D, {shown:.1f} % of variance)",
        fontsize="small" if dims == 3 else "medium",
    )
    return figure


@_plain_text
def layer_change_figure(
    layer_names: Sequence[str],
    relative_changes: Sequence[np.ndarray],
    run_labels: Sequence[str],
    shifts: Sequence[Sequence[int]],
    slowdowns: Sequence[Sequence[int]] | None = None,
    max_layers: int = 40,
) -> Figure:
    """Per-layer relative change ``‖Δθ_l‖ / ‖θ_l‖`` per step, one heatmap per run.

    Parameters
    ----------
    layer_names : sequence of str, length L
    relative_changes : sequence of ndarrays, shape (L, n_run - 1)
        Per run: each layer's step norm divided by its norm before the step.
    run_labels : sequence of str
    shifts : sequence of sequences of int
        Per run, shift positions (checkpoint indices along the run).
    slowdowns : sequence of sequences of int, optional
        Per run, slowdown positions.
    max_layers : int
        With more layers, only the ``max_layers`` that changed most in total are shown.
    """
    names = list(layer_names)
    changes = [np.asarray(c, dtype=float) for c in relative_changes]
    title_note = ""
    if len(names) > max_layers:
        totals = sum(np.nansum(c, axis=1) for c in changes if c.size)
        keep = np.sort(np.argsort(-np.asarray(totals))[:max_layers])
        names = [names[i] for i in keep]
        changes = [c[keep] for c in changes]
        title_note = f" (the {max_layers} of {len(layer_names)} layers that changed most)"
    positive = np.concatenate([c[c > 0].ravel() for c in changes] + [np.array([])])
    n_panels = len(changes)
    height = min(2.0 + 0.16 * len(names), 6.0) * n_panels / max(1, min(n_panels, 2)) + 0.6
    figure = Figure(figsize=(WIDTH, min(height, 14.0)), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_panels, 1, squeeze=False)[:, 0])
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    fontsize = 7 if len(names) > 20 else 8
    image = None
    if slowdowns is None:
        slowdowns = [()] * len(changes)
    panels = zip(axes, changes, run_labels, shifts, slowdowns, strict=True)
    for ax, change, label, run_shifts, run_slowdowns in panels:
        if change.shape[1] == 0:
            ax.text(
                0.5,
                0.5,
                f"{label}: a single checkpoint, no steps",
                ha="center",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            continue
        masked = np.ma.masked_where(~(change > 0), change)
        image = ax.imshow(
            masked,
            aspect="auto",
            cmap="magma",
            norm=norm,
            interpolation="nearest",
            extent=(0.5, change.shape[1] + 0.5, len(names) - 0.5, -0.5),
        )
        ax.set_yticks(np.arange(len(names)), [_short(n) for n in names], fontsize=fontsize)
        ax.set_title(label, fontsize="medium", loc="left")
        ax.set_ylabel("layer (tensor)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        _mark_events(ax, run_shifts, run_slowdowns, "cyan")
    axes[-1].set_xlabel("checkpoint position along the recovered training order (step arriving there)")
    if image is not None:
        colorbar = figure.colorbar(image, ax=list(axes), shrink=0.9)
        colorbar.set_label("relative change per step ‖Δθₗ‖ / ‖θₗ‖")
        _plain_log_labels(colorbar.ax.yaxis)
    figure.suptitle(f"Per-layer change{title_note}", fontsize="medium")
    return figure


def _short(name: str, width: int = 32) -> str:
    """``name`` fit for a tick label: control characters escaped, long names cut at the front."""
    name = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return name if len(name) <= width else "…" + name[-(width - 1) :]
