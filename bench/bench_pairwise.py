"""pairwise, N=32 x D=4M float32, steps 1e-5 of the norm: wtraj beside what users would otherwise call.

Run: python -m pytest bench/bench_pairwise.py --benchmark-only -s
"""

import numpy as np
import pytest
from conftest import N_CHECKPOINTS, N_PARAMS, max_relative_error, memory_floor, record

import wtraj

GROUP = f"pairwise euclidean (N={N_CHECKPOINTS}, D={N_PARAMS:,}, float32)"


@pytest.fixture(scope="module")
def truth(walk):
    return wtraj.pairwise(walk, backend="reference")


def _run(benchmark, fn, rounds=3):
    fn()
    return benchmark.pedantic(fn, rounds=rounds, iterations=1)


def test_wtraj_numba(benchmark, walk, truth):
    D = _run(benchmark, lambda: wtraj.pairwise(walk, backend="numba"))
    record(GROUP, "wtraj pairwise (numba)", benchmark, max_relative_error(D, truth))


def test_wtraj_numba_bfloat16(benchmark, walk):
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(walk).to(torch.bfloat16)
    # the float64 truth of the bfloat16 values themselves
    truth = wtraj.pairwise(X, backend="reference")
    D = _run(benchmark, lambda: wtraj.pairwise(X, backend="numba"))
    record(GROUP, "wtraj pairwise (numba), the walk as a bfloat16 tensor", benchmark,
           max_relative_error(D, truth), note="half the bytes, widened as loaded")


def test_memory_floor(benchmark, walk):
    _run(benchmark, lambda: memory_floor(walk), rounds=5)
    record(GROUP, "memory floor", benchmark, note="parallel sum of the same bytes")


@pytest.mark.parametrize("mode", ["use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist"])
def test_torch_cdist(benchmark, walk, truth, mode):
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(walk)
    D = _run(benchmark, lambda: torch.cdist(X, X, compute_mode=mode).numpy())
    record(GROUP, f"torch.cdist float32 ({mode})", benchmark, max_relative_error(D, truth),
           note=f"{torch.get_num_threads()} threads")


def test_scipy_pdist(benchmark, walk, truth):
    from scipy.spatial.distance import pdist, squareform

    D = _run(benchmark, lambda: squareform(pdist(walk, "euclidean")), rounds=1)
    record(GROUP, "scipy pdist (float64)", benchmark, max_relative_error(D, truth))


def test_sklearn_euclidean_distances(benchmark, walk, truth):
    metrics = pytest.importorskip("sklearn.metrics")
    D = _run(benchmark, lambda: metrics.euclidean_distances(walk), rounds=1)
    record(GROUP, "sklearn euclidean_distances", benchmark, max_relative_error(D, truth))


def test_numpy_direct_differences(benchmark, walk, truth):
    def direct():
        return np.array([np.linalg.norm(walk - row, axis=1) for row in walk])

    D = _run(benchmark, direct, rounds=1)
    record(GROUP, "numpy direct differences", benchmark, max_relative_error(D, truth))
