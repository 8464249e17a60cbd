"""Angles of a triangle from its three side lengths, the one formula every analysis uses."""

from __future__ import annotations

import numpy as np


def angle_opposite(a, b, c) -> np.ndarray:
    """Angle (radians) between the sides of lengths ``a`` and ``b``, opposite the side ``c``.

    Kahan's formula ("Miscalculating Area and Angles of a Needle-like
    Triangle"): accurate to a few ulps also for needle-like triangles, where
    the law of cosines ``acos((a^2 + b^2 - c^2) / 2ab)`` loses half its digits.
    Lengths that violate the triangle inequality by rounding give 0 or pi;
    a zero ``a`` or ``b`` gives NaN (no angle). Broadcasts over arrays.
    """
    a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, c)))
    big, small = np.maximum(a, b), np.minimum(a, b)
    mu = np.where(small >= c, c - (big - small), small - (big - c))
    numerator = ((big - small) + c) * mu
    denominator = (big + (small + c)) * ((big - c) + small)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = 2.0 * np.arctan(np.sqrt(np.maximum(numerator, 0.0) / denominator))
    angle = np.where(denominator <= 0.0, np.pi, angle)
    return np.where((a == 0.0) | (b == 0.0), np.nan, angle)


def turning_angle(a, b, c) -> np.ndarray:
    """Angle between consecutive steps of lengths ``a`` and ``b`` whose outer ends are ``c`` apart.

    0 is straight on, pi straight back; NaN for a zero-length step.
    """
    return np.pi - angle_opposite(a, b, c)
