"""Real training runs for the trajectory-analysis tests, trained once per test session.

Every run is a tiny network trained on scikit-learn's digits by
:mod:`wtraj.toy` (25 epochs, a checkpoint per epoch, 26 checkpoints with the
initialisation). The whole set trains in about 15 s on one CPU core; the
functions below are cached, so each run trains at most once per session.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import adjusted_rand_score

from wtraj import toy

N_EPOCHS = 25
COMMON = dict(n_checkpoints=N_EPOCHS, batch_size=64, lr=0.2)
SHIFT_AT = {"shift_invert": 12, "shift_rotate": 14}
LR_STEP_AT = 12

# name -> arguments of toy.train_run
RUNS = {
    "init0": dict(init_seed=0, data_seed=0),
    "init1": dict(init_seed=1, data_seed=1),
    "init2": dict(init_seed=2, data_seed=2),
    # the same initialisation as init0, other data orders
    "sibling": dict(init_seed=0, data_seed=5),
    "sibling2": dict(init_seed=0, data_seed=2),
    "sibling3": dict(init_seed=0, data_seed=9),
    "sibling50": dict(init_seed=0, data_seed=50),
    "sibling51": dict(init_seed=0, data_seed=51),
    "shift_invert": dict(init_seed=3, data_seed=3, shift_at=SHIFT_AT["shift_invert"]),
    "shift_rotate": dict(init_seed=4, data_seed=4, shift_at=SHIFT_AT["shift_rotate"], shift="rotate"),
    "lr_step": dict(init_seed=5, data_seed=6, lr_steps={LR_STEP_AT: 0.1}),
    "cnn": dict(model="cnn", init_seed=6, data_seed=7),
    # after its shift this run comes nearest a checkpoint three epochs before
    # the shift, whose run then shrinks its steps forward, as from a start
    "shift_invert_back": dict(init_seed=303, data_seed=303, shift_at=SHIFT_AT["shift_invert"]),
    # three runs from one start, all with the learning rate cut 10x: they end
    # in tight clusters, far apart in units of their last steps
    "lr_sibling0": dict(init_seed=500, data_seed=560, lr_steps={LR_STEP_AT: 0.1}),
    "lr_sibling1": dict(init_seed=500, data_seed=561, lr_steps={LR_STEP_AT: 0.1}),
    "lr_sibling2": dict(init_seed=500, data_seed=562, lr_steps={LR_STEP_AT: 0.1}),
    "lr_sibling3": dict(init_seed=100, data_seed=160, lr_steps={LR_STEP_AT: 0.1}),
    "lr_sibling4": dict(init_seed=100, data_seed=161, lr_steps={LR_STEP_AT: 0.1}),
    "lr_sibling5": dict(init_seed=100, data_seed=162, lr_steps={LR_STEP_AT: 0.1}),
}
NO_SHIFT = ["init0", "init1", "init2", "sibling", "lr_step", "cnn"]


@cache
def run(name: str) -> toy.TrainedRun:
    """The trained run ``name`` of :data:`RUNS`."""
    return toy.train_run(**COMMON, **RUNS[name])


def weights(name: str) -> np.ndarray:
    """``(26, n_params)`` float32 checkpoints of run ``name``, in training order."""
    return run(name).weights


def stack(names) -> tuple[np.ndarray, np.ndarray]:
    """Checkpoints of several runs, one after the other, and the true run of each row."""
    X = np.concatenate([weights(name) for name in names])
    truth = np.concatenate([np.full(weights(name).shape[0], i) for i, name in enumerate(names)])
    return X, truth


def distances(X: np.ndarray) -> np.ndarray:
    """Float64 Euclidean distance matrix computed by scipy: the reference input for ``precomputed``."""
    X = np.asarray(X, dtype=np.float64)
    return cdist(X, X)


def shuffled(D: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``D`` with rows and columns in a random order, and that order."""
    permutation = np.random.default_rng(seed).permutation(D.shape[0])
    return D[np.ix_(permutation, permutation)], permutation


def shared_rows(X: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rows identical to a row of another run (a shared initialisation)."""
    _, first, inverse = np.unique(X, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    shared = np.zeros(X.shape[0], dtype=bool)
    for group in np.unique(inverse):
        rows = np.flatnonzero(inverse == group)
        if np.unique(truth[rows]).shape[0] > 1:
            shared[rows] = True
    return shared


def ari(truth: np.ndarray, labels: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """Adjusted Rand index, leaving out the rows where ``exclude`` is True."""
    keep = np.ones(truth.shape[0], dtype=bool) if exclude is None else ~exclude
    return float(adjusted_rand_score(truth[keep], labels[keep]))
