"""The values a trainer callback hands to its loggers."""

from __future__ import annotations

import math

from wtraj.monitor import MonitorMetrics


def loggable(metrics: MonitorMetrics, prefix: str, by_layer: bool) -> dict[str, float]:
    """``metrics.as_dict(...)`` without the undefined values.

    The first turning angle (and the angle next to a zero step) is NaN: a NaN
    point would break a logger's curve and its y-axis range, so it is left out.
    """
    values = metrics.as_dict(prefix=prefix, by_layer=by_layer)
    return {name: value for name, value in values.items() if not math.isnan(value)}
