"""step_norms and curvature: every backend against independent float64 formulas."""

import warnings

import numpy as np
import pytest
from conftest import (
    BACKENDS,
    FAST_BACKENDS,
    HAS_CUDA,
    TOLERANCE,
    assert_close,
    random_walk,
    to_backend,
    torch,
)
from truth import menger_truth, turning_angle_truth

import wtraj


def _shape(backend, n, d):
    if backend == "triton" and not HAS_CUDA:
        return min(n, 6), min(d, 3001)
    return n, d


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("step", [1e-3, 1e-5, 1e-7], ids=lambda s: f"step{s:g}")
@pytest.mark.parametrize("drift", [False, True], ids=["walk", "drift"])
def test_step_norms_and_curvature_float32(backend, step, drift):
    n, d = _shape(backend, 10, 30011)
    X = random_walk(n, d, step, np.float32, drift=drift, seed=21)
    X64 = X.astype(np.float64)
    data = to_backend(X, backend)
    steps = np.linalg.norm(np.diff(X64, axis=0), axis=1)
    assert_close(wtraj.step_norms(data, backend=backend), steps, TOLERANCE["float32"], what="step norm")
    angles = wtraj.curvature(data, backend=backend)
    truth = turning_angle_truth(X64)
    assert_close(np.cos(angles), np.cos(truth), 0.0, atol=1e-6, what="cos(turning angle)")
    menger = wtraj.curvature(data, kind="menger", backend=backend)
    assert_close(menger, menger_truth(X64), 1e-5, what="Menger curvature")


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_input(backend):
    n, d = _shape(backend, 8, 7001)
    X = random_walk(n, d, 1e-6, np.float64, drift=True, seed=22)
    data = to_backend(X, backend)
    steps = np.linalg.norm(np.diff(X, axis=0), axis=1)
    assert_close(wtraj.step_norms(data, backend=backend), steps, 1e-12, what="step norm")
    assert_close(wtraj.curvature(data, backend=backend), turning_angle_truth(X), 1e-9, what="angle")


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision(backend, dtype):
    if backend == "triton" and dtype == "bfloat16" and not HAS_CUDA:
        pytest.skip("Triton's interpreter has no bfloat16")
    n, d = _shape(backend, 7, 5003)
    X = torch.from_numpy(random_walk(n, d, 3e-2, np.float32, seed=23)).to(getattr(torch, dtype))
    X64 = X.to(torch.float64).numpy()
    data = to_backend(X, backend)
    steps = np.linalg.norm(np.diff(X64, axis=0), axis=1)
    assert_close(wtraj.step_norms(data, backend=backend), steps, TOLERANCE[dtype], what="step norm")
    cos = np.cos(wtraj.curvature(data, backend=backend))
    assert_close(cos, np.cos(turning_angle_truth(X64)), 0.0, atol=1e-6, what="cos(angle)")


def test_straight_line_and_reversal():
    start = np.linspace(-1, 1, 5000)
    direction = np.cos(np.arange(5000.0))
    straight = np.stack([start + t * 1e-3 * direction for t in range(4)])
    assert_close(wtraj.curvature(straight), np.zeros(2), 0.0, atol=1e-6)
    assert_close(wtraj.curvature(straight, kind="menger"), np.zeros(2), 0.0, atol=1e-3)
    back = np.stack([start, start + direction, start])
    assert wtraj.curvature(back)[0] == pytest.approx(np.pi)
    with pytest.warns(RuntimeWarning, match="Menger"):
        assert np.isnan(wtraj.curvature(back, kind="menger")[0])


def test_right_angle_menger_is_circumradius():
    # three corners of a unit square: circumradius sqrt(2)/2
    X = np.zeros((3, 4100))
    X[1, 0] = 1.0
    X[2, 0] = 1.0
    X[2, 4099] = 1.0
    assert wtraj.curvature(X)[0] == pytest.approx(np.pi / 2)
    assert wtraj.curvature(X, kind="menger")[0] == pytest.approx(np.sqrt(2))


def test_zero_step_gives_nan_and_a_warning():
    X = random_walk(5, 4000, 1e-3, seed=24)
    X[2] = X[1]
    with pytest.warns(RuntimeWarning, match="zero length"):
        angles = wtraj.curvature(X)
    assert np.isnan(angles[0]) and np.isnan(angles[1]) and np.isfinite(angles[2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wtraj.step_norms(X)[1] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_smallest_inputs(backend):
    X = random_walk(3, 1, 1e-2, np.float32, seed=25)
    data = to_backend(X, backend)
    assert wtraj.step_norms(data[:2], backend=backend).shape == (1,)
    assert wtraj.curvature(data, backend=backend).shape == (1,)
