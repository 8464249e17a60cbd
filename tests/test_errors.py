"""Bad input: a clear error naming the argument, row or column at fault, never a wrong number."""

import numpy as np
import pytest
from conftest import HAS_CUDA, random_walk, torch

import wtraj


def test_not_two_dimensional():
    with pytest.raises(ValueError, match=r"2-D array .*Shape was \(3, 4, 5\)"):
        wtraj.pairwise(np.zeros((3, 4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Shape was \(7,\)"):
        wtraj.step_norms(np.zeros(7))


def test_empty():
    with pytest.raises(ValueError, match="empty"):
        wtraj.pairwise(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="empty list"):
        wtraj.pairwise([])


def test_x_and_y_differ_in_parameters():
    with pytest.raises(ValueError, match="X has 10, Y has 11"):
        wtraj.pairwise(np.zeros((2, 10)), np.zeros((2, 11)))


def test_rows_of_different_lengths():
    with pytest.raises(ValueError, match=r"X\[1\] has 4 parameters but X\[0\] has 5"):
        wtraj.pairwise([np.zeros(5), np.zeros(4)])


def test_too_few_checkpoints():
    with pytest.raises(ValueError, match="step_norms needs at least 2 checkpoints; X has 1"):
        wtraj.step_norms(np.zeros((1, 10)))
    with pytest.raises(ValueError, match="curvature needs at least 3 checkpoints; X has 2"):
        wtraj.curvature(np.zeros((2, 10)))


@pytest.mark.parametrize("dtype", [np.int64, np.int8, bool, np.complex64])
def test_non_floating_dtypes(dtype):
    with pytest.raises(TypeError, match="floating-point"):
        wtraj.pairwise(np.zeros((2, 5), dtype=dtype))


def test_not_an_array():
    with pytest.raises(TypeError, match="got dict"):
        wtraj.pairwise({"a": 1})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", ["pairwise", "step_norms", "curvature", "trajectory_stats"])
def test_non_finite_values_are_located(call, bad):
    X = random_walk(5, 9000, 1e-3, seed=41)
    X[3, 8500] = bad
    X[4, 10] = bad
    with pytest.raises(ValueError, match=r"X row 3, column 8500 is (nan|inf|-inf)"):
        # copied in blocks of 4096 columns: the bad values lie in different blocks
        getattr(wtraj, call)(np.asfortranarray(X), memory_budget=5 * 4 * 4096)


def test_non_finite_single_checkpoint_and_cross():
    X = np.ones((1, 100))
    X[0, 7] = np.nan
    with pytest.raises(ValueError, match="row 0, column 7"):
        wtraj.pairwise(X)
    with pytest.raises(ValueError, match=r"Y row 0, column 7"):
        wtraj.pairwise(np.ones((2, 100)), X, metric="inner")


def test_check_finite_false_computes_anyway():
    X = random_walk(3, 100, 1e-3, seed=42)
    X[1, 5] = np.nan
    D = wtraj.pairwise(X, check_finite=False)
    assert np.isnan(D[0, 1]) and np.isfinite(D[0, 2])


def test_float64_squares_beyond_range_are_a_clear_error():
    X = np.full((2, 10), 1e300)
    X[1] = -1e300
    for call in (wtraj.pairwise, wtraj.step_norms):
        with pytest.raises(ValueError, match=r"X\[0\]: the squares .* overflow float64.*divide the input"):
            call(X)


def test_unknown_metric_kind_and_budget():
    X = random_walk(3, 10)
    with pytest.raises(ValueError, match="Unknown metric 'hamming'"):
        wtraj.pairwise(X, metric="hamming")
    with pytest.raises(ValueError, match="kind='gauss'"):
        wtraj.curvature(X, kind="gauss")
    with pytest.raises(ValueError, match="memory_budget='lots'"):
        wtraj.pairwise(X, memory_budget="lots")
    with pytest.raises(ValueError, match="positive"):
        wtraj.pairwise(X, memory_budget=0)


def test_cpu_data_with_the_triton_backend(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        wtraj.pairwise(random_walk(3, 10), backend="triton")


@pytest.mark.gpu
def test_cuda_tensor_with_the_numba_backend():
    X = torch.zeros((3, 10), device="cuda")
    with pytest.raises(ValueError, match="CUDA tensor"):
        wtraj.pairwise(X, backend="numba")


@pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only path")
def test_triton_kernel_refuses_numpy_blocks():
    from wtraj.kernels.triton.pairwise import pairwise_block

    with pytest.raises(TypeError, match="torch tensors"):
        pairwise_block(np.zeros((2, 4)), 0, 4, None, 0, 0, "sqdiff", None)
