"""pairwise, N=32 x D=4M float32, steps 1e-5 of the norm: wtraj beside what users would otherwise call.

Also wtraj alone at N = 8 and 128 (float32 and bfloat16), each beside its floors.

Run: python -m pytest bench/bench_pairwise.py --benchmark-only -s
"""

import numpy as np
import pytest
from conftest import N_CHECKPOINTS, N_PARAMS, max_relative_error, measure_floors, random_walk, record

import wtraj

GROUP = f"pairwise euclidean (N={N_CHECKPOINTS}, D={N_PARAMS:,}, float32)"
# the other row counts; N=32 is GROUP
OTHER_ROW_COUNTS = (8, 128)


def _group(n_rows):
    return f"pairwise euclidean (N={n_rows}, D={N_PARAMS:,}, float32 and bfloat16)"


def _bfloat16_bits(tensor):
    """The bytes a bfloat16 tensor's kernels read, as a NumPy uint16 array."""
    import torch

    return tensor.view(torch.int16).numpy().view(np.uint16)


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
           max_relative_error(D, truth), note="half the bytes, widened as loaded", key="bfloat16")


# autouse: it runs under --benchmark-only too, in the same run as the providers
@pytest.fixture(scope="module", autouse=True)
def measured_floors(walk):
    measure_floors(GROUP, walk, pairwise=True)
    try:
        import torch
    except ImportError:
        return
    measure_floors(GROUP, _bfloat16_bits(torch.from_numpy(walk).to(torch.bfloat16)), key="bfloat16",
                   pairwise=True)


@pytest.fixture(scope="module", params=OTHER_ROW_COUNTS, ids=lambda n: f"N={n}")
def other_walk(request):
    return random_walk(request.param, N_PARAMS)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_wtraj_numba_rows(benchmark, other_walk, dtype):
    group = _group(other_walk.shape[0])
    if dtype == "float32":
        X, bits = other_walk, other_walk
    else:
        torch = pytest.importorskip("torch")
        X = torch.from_numpy(other_walk).to(torch.bfloat16)
        bits = _bfloat16_bits(X)
    # the float64 truth costs far more than the kernel at N=128; N=32 checks the error of both dtypes
    D = _run(benchmark, lambda: wtraj.pairwise(X, backend="numba"))
    error = None
    if other_walk.shape[0] <= N_CHECKPOINTS:
        error = max_relative_error(D, wtraj.pairwise(X, backend="reference"))
    record(group, f"wtraj pairwise (numba), {dtype}", benchmark, error, key=dtype)
    measure_floors(group, bits, key=dtype, pairwise=True)


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
