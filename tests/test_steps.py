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
from wtraj.kernels.contract import N_PATH_SUMS, PathSum


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
    assert_close(
        wtraj.step_norms(data, backend=backend), steps, TOLERANCE[("step_norm", "float32")], what="step norm"
    )
    angles = wtraj.curvature(data, backend=backend)
    assert_close(angles, turning_angle_truth(X64), TOLERANCE[("angle", "float32")], what="turning angle")
    menger = wtraj.curvature(data, kind="menger", backend=backend)
    assert_close(menger, menger_truth(X64), TOLERANCE[("menger", "float32")], what="Menger curvature")


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_input(backend):
    n, d = _shape(backend, 8, 7001)
    X = random_walk(n, d, 1e-6, np.float64, drift=True, seed=22)
    data = to_backend(X, backend)
    steps = np.linalg.norm(np.diff(X, axis=0), axis=1)
    assert_close(wtraj.step_norms(data, backend=backend), steps, TOLERANCE[("step_norm", "float64")])
    angles = wtraj.curvature(data, backend=backend)
    assert_close(angles, turning_angle_truth(X), TOLERANCE[("angle", "float64")], what="turning angle")
    menger = wtraj.curvature(data, kind="menger", backend=backend)
    assert_close(menger, menger_truth(X), TOLERANCE[("menger", "float64")], what="Menger curvature")


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
    assert_close(wtraj.step_norms(data, backend=backend), steps, TOLERANCE[("step_norm", dtype)])
    angles = wtraj.curvature(data, backend=backend)
    assert_close(angles, turning_angle_truth(X64), TOLERANCE[("angle", dtype)], what="turning angle")


def test_straight_line_and_reversal():
    start = np.linspace(-1, 1, 5000)
    direction = np.cos(np.arange(5000.0))
    straight = np.stack([start + t * 1e-3 * direction for t in range(4)])
    # rounding of the rows leaves angles of ~1e-13 rad, below what either side resolves
    assert_close(wtraj.curvature(straight), turning_angle_truth(straight), 0.0, atol=1e-15)
    assert_close(wtraj.curvature(straight, kind="menger"), menger_truth(straight), 0.0, atol=1e-15)
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


def _small_angle_walk(angle, dtype, d, seed):
    """Four checkpoints whose steps turn by about ``angle`` radians, with steps of nearly equal length.

    float32: integer values below 2**24, so the float32 rows hold exactly the
    walk that was meant and its angles are those asked for.
    """
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        direction = rng.integers(-(2**20), 2**20, d).astype(np.float64)
        turn = np.zeros((3, d))
        # one coordinate moved by k turns the step by about k / |direction|
        k = max(1, round(angle * np.linalg.norm(direction)))
        for i in range(3):
            turn[i, rng.integers(d)] = k * (-1) ** i
        start = rng.integers(-(2**21), 2**21, d).astype(np.float64)
    else:
        direction = rng.standard_normal(d)
        turn = angle * np.linalg.norm(direction) * rng.standard_normal((3, d)) / np.sqrt(d)
        start = 100 * rng.standard_normal(d)
    steps = direction + turn
    walk = np.vstack([start, start + np.cumsum(steps, axis=0)])
    return walk.astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("angle", [1e-8, 1e-6, 1e-4, 1e-2], ids=lambda a: f"angle{a:g}")
def test_small_turning_angles_as_angles(backend, dtype, angle):
    # arccos of the cosine, or atan2 of sqrt(|u|^2|v|^2 - (u.v)^2), keeps no digit at 1e-8 rad
    n, d = _shape(backend, 4, 20011)
    X = _small_angle_walk(angle, dtype, d, seed=26)
    X64 = X.astype(np.float64)
    truth = turning_angle_truth(X64)
    assert (truth < 10 * angle).all() and (truth > angle / 10).all()
    data = to_backend(X, backend)
    # the truth's unit vectors carry 1e-16 per value: ~1e-16 / (angle sqrt(D)) relative in the angle
    rtol = TOLERANCE[("angle", "float64")] + 1e-15 / (angle * np.sqrt(d))
    assert_close(wtraj.curvature(data, backend=backend), truth, rtol, what="turning angle")
    menger = wtraj.curvature(data, kind="menger", backend=backend)
    assert_close(menger, menger_truth(X64), rtol, what="Menger curvature")


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_steps_of_1e_100(backend):
    # |u|^2 |v|^2 = 1e-400 underflows: the angles once came out 0 or pi
    n, d = _shape(backend, 6, 3001)
    X = random_walk(n, d, 1e-3, np.float64, seed=27) * 1e-100
    data = to_backend(X, backend)
    truth = turning_angle_truth(X)
    assert ((truth > np.pi / 4) & (truth < 3 * np.pi / 4)).all()
    assert_close(wtraj.curvature(data, backend=backend), truth, TOLERANCE[("angle", "float64")])
    steps = np.linalg.norm(np.diff(X, axis=0), axis=1)
    assert_close(wtraj.step_norms(data, backend=backend), steps, TOLERANCE[("step_norm", "float64")])


def test_float64_squares_that_underflow_warn():
    X = random_walk(4, 3001, 1e-3, np.float64, seed=28) * 1e-160
    with pytest.warns(RuntimeWarning, match="underflow"):
        wtraj.step_norms(X)


@pytest.mark.parametrize("backend", BACKENDS)
def test_angles_near_pi_and_between_steps_of_very_different_lengths(backend):
    # found by hypothesis: turning back by 1.2e-7 rad short of pi (the bend side cannot
    # resolve it, the skip can), and a right angle between steps of 1e-5 and 165 (the
    # sides cannot resolve it, the summed u.v can)
    cases = [
        np.array([[1e-30, 0.0], [0.0, 8.2e-24], [0.0, 0.0]], dtype=np.float32),
        np.array([[1e-5, 0.0], [0.0, 0.0], [0.0, 165.0]], dtype=np.float32),
        np.array([[1.0, 0.0], [0.0, 0.0], [-1e-9, 1e6]]),
    ]
    for X in cases:
        X64 = X.astype(np.float64)
        data = to_backend(X, backend)
        angles = wtraj.curvature(data, backend=backend)
        assert_close(angles, turning_angle_truth(X64), TOLERANCE[("angle", "float64")], what="angle")
        menger = wtraj.curvature(data, kind="menger", backend=backend)
        assert_close(menger, menger_truth(X64), TOLERANCE[("menger", "float64")], what="Menger")


@pytest.mark.parametrize("rows", [frozenset({row}) for row in PathSum], ids=lambda rows: min(rows).name)
def test_numba_steps_block_leaves_the_rows_not_asked_for(rows):
    # the Numba kernels skip the sums a pass does not read: those rows keep what they held
    from wtraj.kernels.numba import steps_block

    X = random_walk(7, 2051)
    out = np.full((N_PATH_SUMS, 7), 7.0)
    steps_block(X, 0, 2051, out, rows)
    others = [row for row in PathSum if row not in rows]
    assert (out[others] == 7.0).all()
    assert (out[list(rows)] != 7.0).any()
