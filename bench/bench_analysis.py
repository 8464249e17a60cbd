"""Trajectory analysis at N=10,000 checkpoints: wtraj beside the plain alternatives.

Inputs are precomputed float64 distance matrices (the analysis works on the
N x N matrix; computing it is benchmarked in bench_pairwise.py) of synthetic
trajectories in 64 dimensions whose steps shrink like training steps:

- one trajectory of N checkpoints, shuffled: ``order_checkpoints`` beside
  spectral seriation (Fiedler vector of the Gaussian-kernel Laplacian,
  ``scipy.sparse.linalg.eigsh``) and sorting by the distance from the true
  first checkpoint (an oracle that knows the start);
- N/200 runs of 200 checkpoints from different starts, shuffled:
  ``separate_trajectories`` (number of runs inferred) beside single-linkage
  clustering (``scipy.cluster.hierarchy``) told the true number of runs.

The quality of each result (Kendall's tau, adjusted Rand index) is in the
note column. Run: ``python -m pytest bench/bench_analysis.py --benchmark-only -s``;
``WTRAJ_BENCH_ANALYSIS_N`` sets N (default 10000).
"""

import os

import numpy as np
import pytest
from conftest import record
from scipy.spatial.distance import cdist

import wtraj

N = int(os.environ.get("WTRAJ_BENCH_ANALYSIS_N", 10_000))
RUN_LENGTH = 200
DIMENSIONS = 64


def trajectory(rng, n, start):
    """``(n, 64)`` walk from ``start``: drift plus noise, step sizes shrinking like 1/sqrt(t)."""
    drift = rng.standard_normal(DIMENSIONS)
    drift /= np.linalg.norm(drift)
    sizes = 1.0 / np.sqrt(1.0 + np.arange(n) / 20.0)
    noise = 0.3 * rng.standard_normal((n, DIMENSIONS)) / np.sqrt(DIMENSIONS)
    return start + np.cumsum(sizes[:, None] * (drift + noise), axis=0)


@pytest.fixture(scope="module")
def one_run():
    rng = np.random.default_rng(0)
    X = trajectory(rng, N, np.zeros(DIMENSIONS))
    permutation = rng.permutation(N)
    return cdist(X[permutation], X[permutation]), permutation


@pytest.fixture(scope="module")
def many_runs():
    rng = np.random.default_rng(1)
    n_runs = N // RUN_LENGTH
    X = np.concatenate(
        [trajectory(rng, RUN_LENGTH, 20.0 * rng.standard_normal(DIMENSIONS)) for _ in range(n_runs)]
    )
    truth = np.repeat(np.arange(n_runs), RUN_LENGTH)
    permutation = rng.permutation(X.shape[0])
    return cdist(X[permutation], X[permutation]), truth[permutation], n_runs


def tau(order, permutation):
    from scipy.stats import kendalltau

    return kendalltau(permutation[order], np.arange(order.shape[0])).statistic


def spectral_order(D):
    from scipy.sparse.csgraph import laplacian
    from scipy.sparse.linalg import eigsh

    scale = np.median(np.partition(D, 1, axis=1)[:, 1])
    W = np.exp(-((D / (10 * scale)) ** 2))
    L = laplacian(W, normed=True)
    _, vectors = eigsh(L, k=2, sigma=-1e-3, which="LM")
    return np.argsort(vectors[:, 1])


ORDER = f"order_checkpoints (one run, N={N:,}, precomputed)"
SEPARATE = f"separate_trajectories ({N // RUN_LENGTH} runs x {RUN_LENGTH}, precomputed)"


def test_order_wtraj(benchmark, one_run):
    D, permutation = one_run
    order = benchmark.pedantic(
        lambda: wtraj.order_checkpoints(D, metric="precomputed"), rounds=1, iterations=1
    )
    record(ORDER, "wtraj order_checkpoints", benchmark, note=f"tau {tau(order, permutation):.4f}")


def test_order_spectral(benchmark, one_run):
    D, permutation = one_run
    order = benchmark.pedantic(lambda: spectral_order(D), rounds=1, iterations=1)
    record(
        ORDER,
        "spectral seriation (eigsh)",
        benchmark,
        note=f"|tau| {abs(tau(order, permutation)):.4f}, no direction",
    )


def test_order_distance_from_true_start(benchmark, one_run):
    D, permutation = one_run
    start = int(np.flatnonzero(permutation == 0)[0])
    order = benchmark.pedantic(lambda: np.argsort(D[start]), rounds=3, iterations=1)
    record(
        ORDER,
        "argsort distance from the true start (oracle)",
        benchmark,
        note=f"tau {tau(order, permutation):.4f}",
    )


def test_separate_wtraj(benchmark, many_runs):
    from sklearn.metrics import adjusted_rand_score

    D, truth, n_runs = many_runs
    labels = benchmark.pedantic(
        lambda: wtraj.separate_trajectories(D, metric="precomputed"), rounds=1, iterations=1
    )
    record(
        SEPARATE,
        "wtraj separate_trajectories",
        benchmark,
        note=f"ARI {adjusted_rand_score(truth, labels):.4f}, {labels.max() + 1} runs inferred",
    )


def test_separate_single_linkage(benchmark, many_runs):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import adjusted_rand_score

    D, truth, n_runs = many_runs

    def cluster():
        return fcluster(linkage(squareform(D, checks=False), "single"), n_runs, "maxclust")

    labels = benchmark.pedantic(cluster, rounds=1, iterations=1)
    record(
        SEPARATE,
        "scipy single linkage (told k)",
        benchmark,
        note=f"ARI {adjusted_rand_score(truth, labels):.4f}",
    )
