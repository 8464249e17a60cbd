"""Synthetic training trajectories for the analysis benchmarks.

Walks in 64 dimensions whose steps shrink like training steps (1/sqrt(t)):
a drift (what the data pull towards) plus noise (the order of the batches).
Runs from one initialisation share the start and the drift and differ in
their noise, so they stay side by side, closer to each other early on than
to their own next checkpoint, as the toy runs of :mod:`wtraj.toy` do.
"""

import numpy as np

DIMENSIONS = 64


def unit_drift(rng):
    drift = rng.standard_normal(DIMENSIONS)
    return drift / np.linalg.norm(drift)


def trajectory(rng, n, start, drift=None):
    """``(n, 64)`` walk from ``start`` (excluded): drift plus noise, steps shrinking like 1/sqrt(t)."""
    drift = unit_drift(rng) if drift is None else drift
    sizes = 1.0 / np.sqrt(1.0 + np.arange(n) / 20.0)
    noise = 0.3 * rng.standard_normal((n, DIMENSIONS)) / np.sqrt(DIMENSIONS)
    return start + np.cumsum(sizes[:, None] * (drift + noise), axis=0)


def shared_start_runs(rng, n_runs, length):
    """``n_runs`` runs of ``length`` checkpoints from one start, shuffled.

    Returns the checkpoints ``(n_runs * length, 64)``, each row's run, and
    which rows are the start (every run holds it as its first checkpoint).
    """
    drift, start = unit_drift(rng), np.zeros(DIMENSIONS)
    X = np.concatenate([np.vstack([start, trajectory(rng, length - 1, start, drift)]) for _ in range(n_runs)])
    truth = np.repeat(np.arange(n_runs), length)
    permutation = rng.permutation(X.shape[0])
    X, truth = X[permutation], truth[permutation]
    return X, truth, np.all(X == start, axis=1)
