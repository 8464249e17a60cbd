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
    check_metric(D, X, None, "euclidean", TOLERANCE[("euclidean", "float32")])
    assert (np.diag(D) == 0).all()
    np.testing.assert_array_equal(D, D.T)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_float32(backend, metric):
    n, d = _shape(backend, 7, 9001)
    X = random_walk(n, d, 1e-5, np.float32, seed=2)
    D = wtraj.pairwise(to_backend(X, backend), metric=metric, backend=backend)
    check_metric(D, X, None, metric, TOLERANCE[(metric, "float32")])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_float64(backend, metric):
    n, d = _shape(backend, 6, 5003)
    X = random_walk(n, d, 1e-7, np.float64, seed=3)
    D = wtraj.pairwise(to_backend(X, backend), metric=metric, backend=backend)
    check_metric(D, X, None, metric, TOLERANCE[(metric, "float64")])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_cross_pairs(backend, metric):
    n, d = _shape(backend, 6, 4099)
    X = random_walk(n + 3, d, 1e-4, np.float32, seed=4)
    A, B = X[:n], X[3:]
    D = wtraj.pairwise(to_backend(A, backend), to_backend(B, backend), metric=metric, backend=backend)
    assert D.shape == (A.shape[0], B.shape[0])
    check_metric(D, A, B, metric, TOLERANCE[(metric, "float32")])


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_wide(backend, dtype):
    if backend == "triton" and dtype == "bfloat16" and not HAS_CUDA:
        pytest.skip("Triton's interpreter has no bfloat16")
    n, d = _shape(backend, 6, 6007)
    X32 = random_walk(n, d, 1e-2, np.float32, seed=5)
    X = torch.from_numpy(X32).to(getattr(torch, dtype))
    D = wtraj.pairwise(to_backend(X, backend), backend=backend)
    check_metric(D, X, None, "euclidean", TOLERANCE[("euclidean", dtype)])
    if dtype == "float16":
        D_np = wtraj.pairwise(X32.astype(np.float16), backend="numba")
        check_metric(D_np, X, None, "euclidean", TOLERANCE[("euclidean", dtype)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n,d", [(1, 5), (2, 1), (2, 4097), (3, 8191), (5, 12289)], ids=lambda v: str(v))
def test_edge_shapes(backend, n, d):
    n, d = _shape(backend, n, d)
    X = random_walk(n, d, 1e-3, np.float32, seed=6)
    D = wtraj.pairwise(to_backend(X, backend), backend=backend)
    assert D.shape == (n, n) and D.dtype == np.float64
    check_metric(D, X, None, "euclidean", TOLERANCE[("euclidean", "float32")])


@pytest.mark.parametrize("n,m", [(53, 53), (60, 50)], ids=["self-53", "cross-60x50"])
def test_many_rows_use_the_row_parallel_kernel(n, m):
    X = random_walk(max(n, m), 3001, 1e-5, np.float32, seed=7)
    Y = None if n == m else X[:m]
    D = wtraj.pairwise(X[:n], Y, backend="numba")
    check_metric(D, X[:n], Y, "euclidean", TOLERANCE[("euclidean", "float32")])


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
        TOLERANCE[("euclidean", "float32")],
    )
    transposed = torch.from_numpy(np.ascontiguousarray(wide[:, :d].T)).t()
    assert not transposed.is_contiguous()
    data = transposed.cuda() if (backend == "triton" and HAS_CUDA) else transposed
    D = wtraj.pairwise(data, backend=backend)
    check_metric(D, wide[:, :d], None, "euclidean", TOLERANCE[("euclidean", "float32")])


def test_list_of_rows_and_fortran_order():
    X = random_walk(4, 5000, 1e-4, np.float32, seed=9)
    expected = pairwise_truth(X)
    rtol = TOLERANCE[("euclidean", "float32")]
    assert_close(wtraj.pairwise(list(X)), expected, rtol, 1e-300)
    assert_close(wtraj.pairwise(np.asfortranarray(X)), expected, rtol, 1e-300)
    assert_close(wtraj.pairwise([torch.from_numpy(r.copy()) for r in X]), expected, rtol, 1e-300)


def test_memmap_input(tmp_path):
    X = random_walk(5, 10000, 1e-5, np.float32, seed=10)
    path = tmp_path / "walk.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    assert_close(wtraj.pairwise(mapped), pairwise_truth(X), TOLERANCE[("euclidean", "float32")], 1e-300)


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
    assert_close(wtraj.pairwise(X), truth, TOLERANCE[("euclidean", "float32")], 1e-300)


def _radial_walk(n, d, dtype, seed):
    """Rows that shrink by 0.1% per step (weight decay) while turning by 1e-6 of their norm."""
    rng = np.random.default_rng(seed)
    rows = [rng.standard_normal(d)]
    for _ in range(n - 1):
        rows.append(0.999 * rows[-1] + 1e-6 * rng.standard_normal(d))
    return np.array(rows).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cosine_when_the_change_is_mostly_radial(backend, dtype):
    # |a - b| is almost all |a| - |b|: (|a-b|^2 - (|a|-|b|)^2) / (2|a||b|) cancels
    # here (relative error 1.6e-2 in float32 at D=1e6); unit-vector differences do not
    n, d = _shape(backend, 5, 200003)
    X = _radial_walk(n, d, dtype, seed=14)
    C = wtraj.pairwise(to_backend(X, backend), metric="cosine", backend=backend)
    check_metric(C, X, None, "cosine", TOLERANCE[("cosine", dtype)])
    Y = X[::-1].copy()
    C = wtraj.pairwise(to_backend(X, backend), to_backend(Y, backend), metric="cosine", backend=backend)
    check_metric(C, X, Y, "cosine", TOLERANCE[("cosine", dtype)])


def test_cosine_on_iris_rows():
    # scikit-learn's bundled iris data, float32: short rows at every angle and length
    from sklearn.datasets import load_iris

    X = load_iris().data.astype(np.float32)
    check_metric(wtraj.pairwise(X, metric="cosine"), X, None, "cosine", TOLERANCE[("cosine", "float32")])


@pytest.mark.parametrize("call", ["pairwise", "step_norms", "curvature", "trajectory_stats"])
@pytest.mark.parametrize("rows", [False, True], ids=["tensor", "row-list"])
def test_tensors_that_require_grad_are_read_without_it(call, rows):
    X = torch.from_numpy(random_walk(4, 1000, 1e-3, np.float32, seed=15)).requires_grad_(True)
    data = list(X) if rows else X
    result = getattr(wtraj, call)(data)
    expected = getattr(wtraj, call)(X.detach().numpy())
    if call == "trajectory_stats":
        result, expected = result.distances, expected.distances
    np.testing.assert_array_equal(result, expected)
    if call == "pairwise":
        np.testing.assert_array_equal(wtraj.pairwise(data, data, metric="cosine"), wtraj.pairwise(
            X.detach().numpy(), X.detach().numpy(), metric="cosine"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["euclidean", "inner", "cosine", "cityblock"])
def test_float32_values_near_1e20_do_not_overflow(backend, metric):
    # squares of 1e20 overflow float32 tile sums: the float64 recomputation gives the truth
    n, d = _shape(backend, 4, 5000)
    X = random_walk(n, d, 1.0, np.float64, seed=16) * 1e20
    assert np.abs(np.diff(X, axis=0)).max() > 1e20
    X = X.astype(np.float32)
    D = wtraj.pairwise(to_backend(X, backend), metric=metric, backend=backend)
    assert np.isfinite(D).all()
    check_metric(D, X, None, metric, TOLERANCE[(metric, "float32")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_differences_of_1e_23_are_not_flushed(backend):
    # (1e-23)^2 = 1e-46 is below the smallest float32: a float32 tile sum gives 0
    n, d = _shape(backend, 4, 5000)
    X = random_walk(n, d, 1e-3, np.float64, seed=17) * 1e-20
    X = X.astype(np.float32)
    D = wtraj.pairwise(to_backend(X, backend), backend=backend)
    check_metric(D, X, None, "euclidean", TOLERANCE[("euclidean", "float32")])
    assert_close(np.diag(D, 1), wtraj.step_norms(to_backend(X, backend), backend=backend),
                 TOLERANCE[("euclidean", "float32")])


def test_identical_rows_are_exactly_zero_apart():
    X = random_walk(3, 5000, 1e-3, np.float32, seed=18)
    X[2] = X[0]
    D = wtraj.pairwise(X)
    assert D[0, 2] == 0 and D[0, 1] > 0
    # the same row at different places of X and Y: its norm must not depend on the place
    C = wtraj.pairwise(X, X[::-1].copy(), metric="cosine")
    assert C[0, 0] == 0 and C[2, 2] == 0 and C[0, 2] == 0 and C[1, 1] == 0


def _mixed_magnitudes(seed):
    """Rows 1 and 3 are rows 0 and 2 moved by ~1e-23 (squares underflow float32); rows 4, 5 ordinary."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, 3000)) * 1e-20
    X[1] = X[0] + 1e-23 * rng.standard_normal(3000)
    X[3] = X[2] + 1e-23 * rng.standard_normal(3000)
    X[4:] = rng.standard_normal((2, 3000))
    return X.astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "inner", "cityblock"])
def test_rows_out_of_range_are_recomputed_among_ordinary_ones(metric):
    # only the pairs of rows 0-3 need the float64 pass: the others keep their float32 tiles
    X = _mixed_magnitudes(seed=19)
    rtol = TOLERANCE[(metric, "float32")]
    check_metric(wtraj.pairwise(X, metric=metric), X, None, metric, rtol)
    Y = X[::-1].copy()
    check_metric(wtraj.pairwise(X, Y, metric=metric), X, Y, metric, rtol)
