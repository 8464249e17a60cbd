"""wtraj: exact, blockwise geometry of neural-network training trajectories in weight space.

The public API is imported lazily, so ``import wtraj`` needs neither torch,
triton nor numba to be loaded (numba compiles on the first call).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it; each module is imported on first use
_EXPORTS = {
    "pairwise": "wtraj.distances",
    "METRICS": "wtraj.metrics",
    "step_norms": "wtraj.path",
    "curvature": "wtraj.path",
    "trajectory_stats": "wtraj.stats",
    "TrajectoryStats": "wtraj.stats",
    "open": "wtraj.checkpoints",
    "Checkpoints": "wtraj.checkpoints",
    "TrajectoryMonitor": "wtraj.monitor",
    "MonitorMetrics": "wtraj.monitor",
    "TrajectoryLightningCallback": "wtraj.integrations.lightning",
    "TrajectoryTrainerCallback": "wtraj.integrations.huggingface",
    "order_checkpoints": "wtraj.analysis",
    "separate_trajectories": "wtraj.analysis",
    "trajectory_tree": "wtraj.analysis",
    "detect_shifts": "wtraj.analysis",
    "ShiftEvent": "wtraj.analysis",
    "assign": "wtraj.analysis",
    "analyze": "wtraj.pipeline",
    "Analysis": "wtraj.result",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wtraj' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
