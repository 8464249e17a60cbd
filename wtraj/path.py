"""Step norms and curvature along a trajectory, from the path sums of one pass."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from wtraj._engine import prepare
from wtraj._pass import Pass
from wtraj.kernels.contract import PathSum

# the path sums each function reads (the pass computes only these)
STEP_SUMS = frozenset({PathSum.STEP2})
# (both kinds of curvature come from the turning angle)
CURVATURE_SUMS = frozenset({PathSum.STEP2, PathSum.BEND2, PathSum.SKIP2, PathSum.STEP_DOT})
CURVATURE_KINDS = ("angle", "menger")


def step_lengths(steps: np.ndarray) -> np.ndarray:
    """(N-1,) ``|x[i+1] - x[i]|`` from the path sums (:class:`~wtraj.kernels.contract.PathSum`)."""
    return np.sqrt(steps[PathSum.STEP2, :-1])


def turning_angles(steps: np.ndarray) -> np.ndarray:
    r"""(N-2,) angle in radians between step ``i`` and step ``i+1``; NaN at a zero step.

    Near 0 and pi, from the three sides of the triangle that steps ``u`` and
    ``v`` span: :math:`|u|`, :math:`|v|` and the directly summed bend
    :math:`|v - u|` (near pi, the skip :math:`|u + v|`), by Kahan's formula
    for the angle of a needle-like triangle; elsewhere, and wherever the
    steps' lengths differ so much that the sides say less, the arccosine of
    the directly summed :math:`u \cdot v / (|u||v|)`. Each angle takes the
    formula of smaller error: about :math:`10^{-16}` relative times
    :math:`\min(1 + \big||u| - |v|\big| / (\min(|u|, |v|)\, \theta^2),\ 1 / (\theta \sin\theta))`,
    with :math:`\theta` the angle's distance from 0 or pi: ~1e-15 at every
    angle when consecutive steps have similar lengths, ~1e-16 / sin(theta)
    absolute when they do not.
    """
    u2, v2 = steps[PathSum.STEP2, :-2], steps[PathSum.STEP2, 1:-1]
    angles = _angle_between_steps(steps)
    zero = (u2 == 0) | (v2 == 0)
    if zero.any():
        first = int(np.flatnonzero(zero)[0])
        warnings.warn(
            f"{int(zero.sum())} turning angle(s) are undefined because a step has zero length "
            f"(first at angle {first}: two consecutive checkpoints are identical); they are NaN.",
            RuntimeWarning,
            stacklevel=3,
        )
        angles[zero] = np.nan
    return angles


def _angle_between_steps(steps: np.ndarray) -> np.ndarray:
    """(N-2,) angle between consecutive steps ``u``, ``v``, by the formula of smaller error.

    Sides: up to pi/2 the angle opposite the bend ``|v - u|`` in the triangle
    ``|u|, |v|, |v - u|``; beyond, pi minus the angle opposite the skip
    ``|u + v|`` (a path turning back mirrors one going straight on). Their
    relative error is ~eps (1 + r / theta^2), r the steps' relative length
    difference and theta the angle's distance from 0 or pi. The cosine
    ``u.v / (|u||v|)`` has error ~eps whatever the lengths: ~eps / (theta sin)
    relative in the angle.
    """
    a, b = np.sqrt(steps[PathSum.STEP2, :-2]), np.sqrt(steps[PathSum.STEP2, 1:-1])
    bend2, skip2, dot = steps[PathSum.BEND2, :-2], steps[PathSum.SKIP2, :-2], steps[PathSum.STEP_DOT, :-2]
    with np.errstate(invalid="ignore", divide="ignore"):
        by_cosine = np.arccos(np.clip(dot / (a * b), -1.0, 1.0))
        sharp = bend2 <= skip2
        by_sides = np.where(
            sharp, _kahan_angle(a, b, np.sqrt(bend2)), np.pi - _kahan_angle(a, b, np.sqrt(skip2))
        )
        theta = np.minimum(by_sides, np.pi - by_sides)
        lengths = np.abs(a - b) / np.minimum(a, b)
        sides_error = 1.0 + lengths / theta**2
        cosine_error = 1.0 / (theta * np.sin(theta))
    return np.where(sides_error <= cosine_error, by_sides, by_cosine)


def _kahan_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The angle between sides ``a`` and ``b`` of a triangle, opposite side ``c`` (elementwise).

    W. Kahan, "Miscalculating Area and Angles of a Needle-like Triangle"
    (2014), section 12. Sides that rounding left violating the triangle
    inequality give 0 or pi.
    """
    a, b = np.maximum(a, b), np.minimum(a, b)
    mu = np.where(b >= c, c - (a - b), b - (a - c))
    numerator = np.maximum(((a - b) + c) * mu, 0.0)
    denominator = np.maximum((a + (b + c)) * ((a - c) + b), 0.0)
    return 2.0 * np.arctan2(np.sqrt(numerator), np.sqrt(denominator))


def menger_curvatures(steps: np.ndarray) -> np.ndarray:
    r"""(N-2,) Menger curvature ``1 / circumradius`` of ``x[i], x[i+1], x[i+2]``; NaN where undefined.

    :math:`\kappa = 2 \sin\theta / |w|`, with :math:`\theta` the turning
    angle (:func:`turning_angles`; the triangle's angle at ``x[i+1]`` is
    :math:`\pi - \theta`, of the same sine) and ``w = x[i+2] - x[i]``
    summed directly, so the chord does not cancel when the path turns back.
    As accurate as the angle. Undefined (NaN, with a warning) where two of
    the three points coincide.
    """
    u2, v2, w2 = steps[PathSum.STEP2, :-2], steps[PathSum.STEP2, 1:-1], steps[PathSum.SKIP2, :-2]
    theta = _angle_between_steps(steps)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = 2.0 * np.sin(theta) / np.sqrt(w2)
    degenerate = (u2 == 0) | (v2 == 0) | (w2 == 0)
    if degenerate.any():
        warnings.warn(
            f"{int(degenerate.sum())} Menger curvature(s) are undefined because two of three "
            "consecutive checkpoints coincide; they are NaN.",
            RuntimeWarning,
            stacklevel=3,
        )
        kappa[degenerate] = np.nan
    return kappa


def _path_sums(X, sums, minimum: int, what: str, backend, check_finite, memory_budget, progress, group):
    x_source, _, kernels, ranks = prepare(X, None, backend, group)
    if x_source.n_checkpoints < minimum:
        raise ValueError(
            f"{what} needs at least {minimum} checkpoints; X has {x_source.n_checkpoints}."
        )
    path = Pass(
        x_source, kernels, memory_budget=memory_budget, progress=progress,
        check_finite=check_finite, group=ranks,
    ).run(steps=sums)  # fmt: skip
    return path.steps


def step_norms(
    X: Any,
    *,
    backend: str | None = None,
    check_finite: bool = True,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
) -> np.ndarray:
    """Length of every step of the trajectory, ``|x[i+1] - x[i]|``.

    Parameters
    ----------
    X : (N, D) array-like, N >= 2
        As for :func:`wtraj.pairwise`; the other arguments (``group`` too).

    Returns
    -------
    (N-1,) float64 ndarray

    Notes
    -----
    O(N D) work, done entirely in float64 (values widened before the
    subtraction): relative error about 1e-15 for any step size.
    """
    steps = _path_sums(
        X, STEP_SUMS, 2, "step_norms", backend, check_finite, memory_budget, progress, group
    )
    return step_lengths(steps)


def curvature(
    X: Any,
    kind: str = "angle",
    *,
    backend: str | None = None,
    check_finite: bool = True,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
) -> np.ndarray:
    """Discrete curvature at every interior checkpoint.

    Parameters
    ----------
    X : (N, D) array-like, N >= 3
        As for :func:`wtraj.pairwise`; the other arguments (``group`` too).
    kind : {"angle", "menger"}
        ``"angle"``: turning angle in radians between step ``i`` and step
        ``i+1`` (0 = straight on, pi = straight back). ``"menger"``: one over
        the radius of the circle through ``x[i], x[i+1], x[i+2]``.

    Returns
    -------
    (N-2,) float64 ndarray
        NaN, with a ``RuntimeWarning``, where a step has zero length.

    Notes
    -----
    Computed from the step vectors themselves (float64 sums of
    ``|u|^2``, ``|v|^2``, ``|v - u|^2``, ``|u + v|^2`` and ``u . v``), never from a
    distance matrix through the law of cosines; see :func:`turning_angles`
    for the angle's error, also at very small angles.
    """
    if kind not in CURVATURE_KINDS:
        raise ValueError(f"kind={kind!r} is not a curvature; choose one of {CURVATURE_KINDS}.")
    steps = _path_sums(
        X, CURVATURE_SUMS, 3, "curvature", backend, check_finite, memory_budget, progress, group
    )
    return turning_angles(steps) if kind == "angle" else menger_curvatures(steps)
