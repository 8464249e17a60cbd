"""pairwise: every backend against the float64 truth, on near-identical checkpoints and edge shapes."""

import math

import numpy as np
import pytest
from conftest import (
    BACKENDS,
    FAST_BACKENDS,
    HAS_CUDA,
    TOLERANCE,
    as_float64,
    assert_close,
    random_walk,
    to_backend,
    torch,
)
from truth import pairwise_truth

import wtraj

METRICS = ["euclidean", "sqeuclidean", "cosine", "inner", "cityblock"]
STEPS = [1e-3, 1e-5, 1e-7]


def _shape(backend, n, d):
    # Triton's interpreter runs every program in Python: keep its inputs small
    if backend == "triton" and not HAS_CUDA:
        return min(n, 5), min(d, 3001)
    return n, d


def check_metric(actual, X, Y, metric, rtol):
    expected = pairwise_truth(as_float64(X), None if Y is None else as_float64(Y), metric)
    if metric == "inner":
        # a dot product's error is relative to |a||b|, not to a.b (which may be 0)
        scale = np.sqrt(
            np.outer(
                np.diag(pairwise_truth(as_float64(X), None, "inner")),
                np.diag(pairwise_truth(as_float64(X if Y is None else Y), None, "inner")),
            )
        )
        error = np.abs(actual - expected)
        assert (error <= rtol * scale).all(), f"inner: worst error {np.max(error / scale):.3e} of |a||b|"
        return
    assert_close(actual, expected, rtol, atol=1e-300, what=metric)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"step{s:g}")
@pytest.mark.parametrize("drift", [False, True], ids=["walk", "drift"])
def test_euclidean_near_identical_float32(backend, step, drift):
    n, d = _shape(backend, 9, 20011)
    X = random_walk(n, d, step, np.float32, drift=drift, seed=1)
    D = wtraj.pairwise(to_backend(X, backend), backend=backend)
    check_metric(D, X, None, "euclidean", TOLERANCE["float32"])
    assert (np.diag(D) == 0).all()
    np.testing.assert_array_equal(D, D.T)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_float32(backend, metric):
    n, d = _shape(backend, 7, 9001)
    X = random_walk(n, d, 1e-5, np.float32, seed=2)
    D = wtraj.pairwise(to_backend(X, backend), metric=metric, backend=backend)
    rtol = TOLERANCE["float32"] * (10 if metric == "cosine" else 1)
    check_metric(D, X, None, metric, rtol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_float64(backend, metric):
    n, d = _shape(backend, 6, 5003)
    X = random_walk(n, d, 1e-7, np.float64, seed=3)
    D = wtraj.pairwise(to_backend(X, backend), metric=metric, backend=backend)
    rtol = 1e-9 if metric == "cosine" else TOLERANCE["float64"]
    check_metric(D, X, None, metric, rtol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_cross_pairs(backend, metric):
    n, d = _shape(backend, 6, 4099)
    X = random_walk(n + 3, d, 1e-4, np.float32, seed=4)
    A, B = X[:n], X[3:]
    D = wtraj.pairwise(to_backend(A, backend), to_backend(B, backend), metric=metric, backend=backend)
    assert D.shape == (A.shape[0], B.shape[0])
    rtol = TOLERANCE["float32"] * (10 if metric == "cosine" else 1)
    check_metric(D, A, B, metric, rtol)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_wide(backend, dtype):
    if backend == "triton" and dtype == "bfloat16" and not HAS_CUDA:
        pytest.skip("Triton's interpreter has no bfloat16")
    n, d = _shape(backend, 6, 6007)
    X32 = random_walk(n, d, 1e-2, np.float32, seed=5)
    X = torch.from_numpy(X32).to(getattr(torch, dtype))
    D = wtraj.pairwise(to_backend(X, backend), backend=backend)
    check_metric(D, X, None, "euclidean", TOLERANCE[dtype])
    if dtype == "float16":
        D_np = wtraj.pairwise(X32.astype(np.float16), backend="numba")
        check_metric(D_np, X, None, "euclidean", TOLERANCE[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n,d", [(1, 5), (2, 1), (2, 4097), (3, 8191), (5, 12289)], ids=lambda v: str(v))
def test_edge_shapes(backend, n, d):
    n, d = _shape(backend, n, d)
    X = random_walk(n, d, 1e-3, np.float32, seed=6)
    D = wtraj.pairwise(to_backend(X, backend), backend=backend)
    assert D.shape == (n, n) and D.dtype == np.float64
    check_metric(D, X, None, "euclidean", TOLERANCE["float32"])


@pytest.mark.parametrize("n,m", [(53, 53), (60, 50)], ids=["self-53", "cross-60x50"])
def test_many_rows_use_the_row_parallel_kernel(n, m):
    X = random_walk(max(n, m), 3001, 1e-5, np.float32, seed=7)
    Y = None if n == m else X[:m]
    D = wtraj.pairwise(X[:n], Y, backend="numba")
    check_metric(D, X[:n], Y, "euclidean", TOLERANCE["float32"])


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_non_contiguous_inputs(backend):
    n, d = _shape(backend, 5, 2 * 3001)
    wide = random_walk(n, 2 * d, 1e-4, np.float32, seed=8)
    X = wide[:, ::2]
    assert not X.flags.c_contiguous
    check_metric(
        wtraj.pairwise(
            to_backend(np.ascontiguousarray(X), backend) if backend == "triton" else X, backend=backend
        ),
        X,
        None,
        "euclidean",
        TOLERANCE["float32"],
    )
    transposed = torch.from_numpy(np.ascontiguousarray(wide[:, :d].T)).t()
    assert not transposed.is_contiguous()
    data = transposed.cuda() if (backend == "triton" and HAS_CUDA) else transposed
    D = wtraj.pairwise(data, backend=backend)
    check_metric(D, wide[:, :d], None, "euclidean", TOLERANCE["float32"])


def test_list_of_rows_and_fortran_order():
    X = random_walk(4, 5000, 1e-4, np.float32, seed=9)
    expected = pairwise_truth(X)
    assert_close(wtraj.pairwise(list(X)), expected, 1e-6, 1e-300)
    assert_close(wtraj.pairwise(np.asfortranarray(X)), expected, 1e-6, 1e-300)
    assert_close(wtraj.pairwise([torch.from_numpy(r.copy()) for r in X]), expected, 1e-6, 1e-300)


def test_memmap_input(tmp_path):
    X = random_walk(5, 10000, 1e-5, np.float32, seed=10)
    path = tmp_path / "walk.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    assert_close(wtraj.pairwise(mapped), pairwise_truth(X), 1e-6, 1e-300)


def test_all_zero_rows():
    X = np.zeros((3, 4100), dtype=np.float32)
    X[2] = 1.0
    D = wtraj.pairwise(X)
    assert D[0, 1] == 0 and D[0, 2] == pytest.approx(np.sqrt(4100))
    with pytest.warns(RuntimeWarning, match="all-zero"):
        C = wtraj.pairwise(X, metric="cosine")
    assert np.isnan(C[0, 2]) and C[2, 2] == 0


def test_cosine_is_accurate_near_zero():
    # rows almost parallel: 1 - cos ~ 1e-12, where 1 - a.b/(|a||b|) keeps few digits
    X = random_walk(4, 20000, 1e-6, np.float64, seed=11)
    C = wtraj.pairwise(X, metric="cosine")
    truth = pairwise_truth(X, None, "cosine")
    assert_close(C, truth, TOLERANCE[("cosine", "float64")], 1e-300, what="cosine")
    # the textbook formula, with exactly rounded sums (math.fsum) rather than a
    # BLAS dot product, loses the same digits on every machine
    a, b = X[0], X[3]
    norms = math.sqrt(math.fsum(a * a)) * math.sqrt(math.fsum(b * b))
    naive = 1 - math.fsum(a * b) / norms
    assert abs(naive - truth[0, 3]) / truth[0, 3] > 1e-6


def test_results_are_deterministic():
    X = random_walk(9, 300001, 1e-5, np.float32, seed=12)
    first = wtraj.pairwise(X)
    for _ in range(2):
        np.testing.assert_array_equal(wtraj.pairwise(X), first)


def test_beats_the_gemm_expansion():
    # the reason wtraj exists: the GEMM trick keeps no correct digit here
    X = random_walk(6, 100000, 1e-6, np.float32, seed=13)
    truth = pairwise_truth(X)
    T = torch.from_numpy(X)
    gemm = torch.cdist(T, T, compute_mode="use_mm_for_euclid_dist").numpy()
    off = ~np.eye(6, dtype=bool)
    assert np.max(np.abs(gemm - truth)[off] / truth[off]) > 1e-2
    assert_close(wtraj.pairwise(X), truth, 1e-6, 1e-300)
