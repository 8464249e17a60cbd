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
  clustering (``scipy.cluster.hierarchy``) told the true number of runs;
- N/1000 runs of 1000 checkpoints from one shared start, with one drift
  (the same data) and their own noise (data order), shuffled: the same two.

The quality of each result (Kendall's tau, adjusted Rand index) is in the
note column. Run: ``python -m pytest bench/bench_analysis.py --benchmark-only -s``;
``WTRAJ_BENCH_ANALYSIS_N`` sets N (default 10000).
"""

import os

import numpy as np
import pytest
from conftest import record
from scipy.spatial.distance import cdist
from synthetic_runs import DIMENSIONS, shared_start_runs, trajectory

import wtraj

N = int(os.environ.get("WTRAJ_BENCH_ANALYSIS_N", 10_000))
RUN_LENGTH = 200
SHARED_RUN_LENGTH = 1000


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


@pytest.fixture(scope="module")
def shared_start():
    n_runs = N // SHARED_RUN_LENGTH
    X, truth, is_start = shared_start_runs(np.random.default_rng(2), n_runs, SHARED_RUN_LENGTH)
    return cdist(X, X), truth, is_start, n_runs


def tau(order, permutation):
    from scipy.stats import kendalltau

    return kendalltau(permutation[order], np.arange(order.shape[0])).statistic


def single_linkage(D, n_clusters):
    """Single-linkage clustering cut at ``n_clusters`` (scipy.cluster.hierarchy)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    return fcluster(linkage(squareform(D, checks=False), "single"), n_clusters, "maxclust")


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
SHARED = (
    f"separate_trajectories ({N // SHARED_RUN_LENGTH} runs x {SHARED_RUN_LENGTH} from one start, precomputed)"
)


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
    from sklearn.metrics import adjusted_rand_score

    D, truth, n_runs = many_runs

    labels = benchmark.pedantic(lambda: single_linkage(D, n_runs), rounds=1, iterations=1)
    record(
        SEPARATE,
        "scipy single linkage (told k)",
        benchmark,
        note=f"ARI {adjusted_rand_score(truth, labels):.4f}",
    )


def test_separate_shared_start_wtraj(benchmark, shared_start):
    from sklearn.metrics import adjusted_rand_score

    D, truth, is_start, _ = shared_start
    labels = benchmark.pedantic(
        lambda: wtraj.separate_trajectories(D, metric="precomputed"), rounds=1, iterations=1
    )
    score = adjusted_rand_score(truth[~is_start], labels[~is_start])
    record(
        SHARED,
        "wtraj separate_trajectories",
        benchmark,
        note=f"ARI {score:.4f} (start rows left out), {labels.max() + 1} runs inferred",
    )


def test_separate_shared_start_single_linkage(benchmark, shared_start):
    from sklearn.metrics import adjusted_rand_score

    D, truth, is_start, n_runs = shared_start

    labels = benchmark.pedantic(lambda: single_linkage(D, n_runs), rounds=1, iterations=1)
    score = adjusted_rand_score(truth[~is_start], labels[~is_start])
    record(SHARED, "scipy single linkage (told k)", benchmark, note=f"ARI {score:.4f} (start rows left out)")
