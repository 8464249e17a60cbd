"""The pairwise metrics: one record each, with the sums it needs and how they become distances."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricInfo:
    """How one metric is computed.

    ``pair_op`` names the elementwise sum the kernels accumulate for every
    pair; ``needs_norms`` asks for the rows' squared norms in the same pass;
    ``finalize(pairs, x_norm2, y_norm2)`` turns float64 sums into the metric.
    ``accuracy`` states the error to expect, for docs and for tests.
    """

    name: str
    aliases: tuple[str, ...]
    pair_op: str
    needs_norms: bool
    finalize: Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], np.ndarray]
    accuracy: str


def _euclidean(pairs, x_norm2, y_norm2):
    return np.sqrt(pairs)


def _identity(pairs, x_norm2, y_norm2):
    return pairs


def _cosine(pairs, x_norm2, y_norm2):
    r"""1 - cos from the directly summed ``|a-b|^2`` and the norms, without cancellation.

    .. math::

        1 - \cos = \frac{|a||b| - a \cdot b}{|a||b|}
                 = \frac{|a-b|^2 - (|a| - |b|)^2}{2 |a| |b|},
        \qquad |a| - |b| = \frac{|a|^2 - |b|^2}{|a| + |b|}

    Both terms of the numerator are accurate where ``a`` and ``b`` are close,
    which the textbook ``1 - a.b / (|a||b|)`` is not.
    """
    x_norm = np.sqrt(x_norm2)[:, None]
    y_norm = np.sqrt(y_norm2)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        radial = (x_norm2[:, None] - y_norm2[None, :]) / (x_norm + y_norm)
        distance = (pairs - radial**2) / (2.0 * x_norm * y_norm)
    zero = (x_norm == 0) | (y_norm == 0)
    if zero.any():
        warnings.warn(
            "cosine distance is undefined for an all-zero checkpoint; those entries are NaN.",
            RuntimeWarning,
            stacklevel=4,
        )
        distance = np.where(zero, np.nan, distance)
    return np.clip(distance, 0.0, 2.0)


METRICS: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        MetricInfo(
            "euclidean", ("l2", "euclid"), "sqdiff", False, _euclidean,
            "float32 input: relative error < 1e-6 (about 1e-7 typical), also for "
            "near-identical checkpoints; float64 input: < 1e-12",
        ),
        MetricInfo(
            "sqeuclidean", ("sqeuclid",), "sqdiff", False, _identity,
            "float32 input: relative error < 1e-6; float64 input: < 1e-12",
        ),
        MetricInfo(
            "cosine", ("cos",), "sqdiff", True, _cosine,
            "1 - cos with relative error ~1e-6 (float32) even when it is near 0",
        ),
        MetricInfo(
            "inner", ("dot",), "dot", False, _identity,
            "absolute error < 1e-6 |a||b| (float32), < 1e-12 |a||b| (float64)",
        ),
        MetricInfo(
            "cityblock", ("manhattan", "l1"), "absdiff", False, _identity,
            "float32 input: relative error < 1e-6; float64 input: < 1e-12",
        ),
    )
}
_BY_ALIAS = {alias: info for info in METRICS.values() for alias in (info.name, *info.aliases)}


def metric_info(metric: str) -> MetricInfo:
    """The record of ``metric`` (a canonical name or an alias)."""
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string; got {type(metric).__name__}.")
    info = _BY_ALIAS.get(metric.lower())
    if info is None:
        raise ValueError(
            f"Unknown metric {metric!r}; choose one of {', '.join(METRICS)}."
        )
    return info
