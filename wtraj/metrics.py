"""The pairwise metrics: one record each, with the sums it needs and how they become distances."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wtraj.kernels.contract import PairOp


@dataclass(frozen=True)
class MetricInfo:
    """How one metric is computed.

    ``pair_op`` names the elementwise sum the kernels accumulate for every
    pair; ``needs_norms`` asks for the rows' squared norms in a first pass, whose
    inverse square roots scale the rows of the second (``PairOp.UNITDIFF``);
    ``finalize(pairs, x_norm2, y_norm2)`` turns float64 sums into the metric, in place.
    ``accuracy`` states the error to expect, for docs and for tests.
    """

    name: str
    aliases: tuple[str, ...]
    pair_op: PairOp
    needs_norms: bool
    finalize: Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], np.ndarray]
    accuracy: str


def _identity(pairs, x_norm2, y_norm2):
    return pairs


def _cosine(pairs, x_norm2, y_norm2):
    r"""1 - cos from the summed squared distances of the unit vectors, in place.

    .. math::

        1 - \cos = \tfrac12 \left| \frac{a}{|a|} - \frac{b}{|b|} \right|^2

    Nothing cancels, whether ``a`` and ``b`` point nearly the same way or
    differ mostly in length; the textbook ``1 - a.b / (|a||b|)`` loses every
    digit near 0, and ``(|a-b|^2 - (|a|-|b|)^2) / (2|a||b|)`` when the change
    is mostly a change of length.
    """
    distance = np.multiply(pairs, 0.5, out=pairs)
    zero_x, zero_y = x_norm2 == 0, y_norm2 == 0
    if zero_x.any() or zero_y.any():
        warnings.warn(
            "cosine distance is undefined for an all-zero checkpoint; those entries are NaN.",
            RuntimeWarning,
            stacklevel=4,
        )
        distance[zero_x, :] = np.nan
        distance[:, zero_y] = np.nan
    return np.clip(distance, 0.0, 2.0, out=distance)


def _sqrt(pairs, x_norm2, y_norm2):
    return np.sqrt(pairs, out=pairs)


METRICS: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        MetricInfo(
            "euclidean", ("l2", "euclid"), PairOp.SQDIFF, False, _sqrt,
            "float32 input: relative error < 2e-7 (measured <= 6e-8), also for "
            "near-identical checkpoints; float64 input: < 1e-14",
        ),
        MetricInfo(
            "sqeuclidean", ("sqeuclid",), PairOp.SQDIFF, False, _identity,
            "float32 input: relative error < 4e-7; float64 input: < 1e-14",
        ),
        MetricInfo(
            "cosine", ("cos",), PairOp.UNITDIFF, True, _cosine,
            "1 - cos with relative error < 1e-9 (float32 and float64 input: float64 "
            "differences of the unit vectors), near 0 and when the rows differ mostly in length",
        ),
        MetricInfo(
            "inner", ("dot",), PairOp.DOT, False, _identity,
            "absolute error < 1e-7 |a||b| (float32), < 1e-14 |a||b| (float64)",
        ),
        MetricInfo(
            "cityblock", ("manhattan", "l1"), PairOp.ABSDIFF, False, _identity,
            "float32 input: relative error < 2e-7; float64 input: < 1e-14",
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
