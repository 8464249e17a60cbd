"""``trajectory_stats``: every geometric quantity of a trajectory from one pass over the data."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wtraj._engine import prepare
from wtraj._pass import Pass
from wtraj._ranges import mirror_upper_triangle
from wtraj.kernels.contract import PairOp, PathSum
from wtraj.path import menger_curvatures, step_lengths, turning_angles


@dataclass(frozen=True)
class LayerStats:
    """Per-tensor part of a trajectory: the same geometry restricted to one tensor's values."""

    name: str
    shape: tuple[int, ...]
    # (N-1,) |x[i+1] - x[i]| over this tensor's values
    step_norms: np.ndarray
    # (N, N) euclidean distances over this tensor's values
    distances: np.ndarray
    # (N,) |x[i]| over this tensor's values
    norms: np.ndarray

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.shape)) or "scalar"
        return f"LayerStats({self.name!r}, shape {shape}, {len(self.norms)} checkpoints)"


class Layers(Mapping):
    """Per-tensor stats looked up by tensor name (``st.layers["fc1.weight"]``), in checkpoint order.

    A read-only mapping: iterating gives the names; ``.values()`` the
    :class:`LayerStats`.
    """

    def __init__(self, layers: list[LayerStats] = ()):
        self._by_name = {layer.name: layer for layer in layers}

    def __getitem__(self, name: str) -> LayerStats:
        try:
            return self._by_name[name]
        except KeyError:
            close = [n for n in self._by_name if name in n][:5]
            hint = f"; names containing it: {', '.join(close)}" if close else ""
            raise KeyError(f"no tensor named {name!r} among {len(self)} layers{hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        shown = [repr(layer) for layer in list(self._by_name.values())[:4]]
        more = f", ... {len(self) - 4} more" if len(self) > 4 else ""
        return f"<{len(self)} layers: {', '.join(shown)}{more}>"


@dataclass(frozen=True)
class TrajectoryStats:
    """Geometry of one trajectory of N checkpoints (see :func:`trajectory_stats`)."""

    # (N, N) euclidean distances, symmetric, zero diagonal
    distances: np.ndarray
    # (N-1,) step lengths |x[i+1] - x[i]|
    step_norms: np.ndarray
    # (N-2,) turning angles in radians between consecutive steps
    turning_angles: np.ndarray
    # (N-2,) Menger curvature 1 / circumradius of consecutive triples
    menger_curvature: np.ndarray
    # (N,) |x[i]|
    norms: np.ndarray
    # (N,) row labels (file names for checkpoints)
    names: list[str]
    # per tensor by name, when asked for with by_layer=True
    layers: Layers = field(default_factory=Layers)

    def __repr__(self) -> str:
        n = len(self.norms)
        angles = self.turning_angles[np.isfinite(self.turning_angles)]
        mean_angle = f"{math.degrees(float(angles.mean())):.1f} deg" if angles.size else "n/a"
        return (
            f"TrajectoryStats({n} checkpoints, path length {self.path_length:.6g}, "
            f"start -> end distance {float(self.distances[0, -1]) if n else math.nan:.6g}, "
            f"mean turning angle {mean_angle}; arrays: distances {self.distances.shape}, "
            f"step_norms {self.step_norms.shape}, turning_angles {self.turning_angles.shape} (radians), "
            f"menger_curvature {self.menger_curvature.shape}, norms {self.norms.shape}; "
            f"layers: {len(self.layers)} by name)"
        )

    @property
    def distance_from_start(self) -> np.ndarray:
        """(N,) |x[i] - x[0]|."""
        return self.distances[0]

    @property
    def path_length(self) -> float:
        """Total length of the path: the sum of the step norms."""
        return float(self.step_norms.sum())


def _symmetric_distances(pairs: np.ndarray) -> np.ndarray:
    """Distances from summed squares of which only ``i < j`` was computed, in place."""
    return np.sqrt(mirror_upper_triangle(pairs), out=pairs)


def trajectory_stats(
    X: Any,
    *,
    by_layer: bool = False,
    backend: str | None = None,
    check_finite: bool = True,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
) -> TrajectoryStats:
    """Distances, step norms, turning angles, Menger curvature and norms in ONE pass over X.

    Parameters
    ----------
    X : (N, D) array-like
        As for :func:`wtraj.pairwise`; the other arguments too.
    by_layer : bool
        Also give every tensor's own step norms, distances and norms (needs a
        checkpoint source, e.g. ``wtraj.open(...)`` or a path; an array is one
        "layer"). Computed in the same pass.
    group : torch.distributed ProcessGroup, optional
        Split the pass across the group's processes; every rank returns the
        same result (see :func:`wtraj.pairwise`).

    Returns
    -------
    TrajectoryStats
        Curvatures are empty for N < 3 and step norms for N < 2.

    Notes
    -----
    Each value of X is read once: every column block goes through the
    pairwise kernel (float32 tile sums, float64 across tiles) and the path
    kernel (float64 throughout) while it is in cache. Accuracy as documented
    in :func:`wtraj.pairwise`, :func:`wtraj.step_norms` and :func:`wtraj.curvature`.
    """
    x_source, _, kernels, ranks = prepare(X, None, backend, group)
    sums = Pass(
        x_source, kernels, by_layer=by_layer, memory_budget=memory_budget, progress=progress,
        check_finite=check_finite, group=ranks,
    ).run(pair_op=PairOp.SQDIFF, steps=True)  # fmt: skip
    steps = sums.steps
    layers = []
    if by_layer:
        for layer, pairs, layer_steps in zip(x_source.layers, sums.layer_pairs, sums.layer_steps):
            layers.append(
                LayerStats(
                    layer.name, tuple(layer.shape), step_lengths(layer_steps),
                    _symmetric_distances(pairs), np.sqrt(layer_steps[PathSum.NORM2]),
                )
            )
    with warnings.catch_warnings():
        # a zero step is reported once, by the turning angles
        warnings.filterwarnings("ignore", message=".*Menger curvature.*")
        menger = menger_curvatures(steps)
    return TrajectoryStats(
        distances=_symmetric_distances(sums.pairs),
        step_norms=step_lengths(steps),
        turning_angles=turning_angles(steps),
        menger_curvature=menger,
        norms=np.sqrt(steps[PathSum.NORM2]),
        names=list(x_source.names),
        layers=Layers(layers),
    )
