"""Properties that hold for every input, at every magnitude float32 holds: symmetry, zero
diagonal, steps on the first off-diagonal, exact scaling, the float64 truth."""

import warnings

import numpy as np
from conftest import TOLERANCE, assert_close
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from truth import pairwise_truth, turning_angle_truth

import wtraj
from wtraj._ranges import FLOAT32_TILE_FLOOR

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
shapes = st.tuples(st.integers(2, 7), st.integers(1, 300))
# Magnitudes where float32 squares underflow (1e-25: differences of 1e-28, squares of
# 1e-56) or overflow (1e19 * 1e3: squares of 1e44) as well as ordinary ones.
scales = st.sampled_from([1.0, 1e-25, 1e-20, 1e-12, 1e15, 1e19])
matrices = st.tuples(shapes.flatmap(lambda shape: arrays(np.float32, shape, elements=finite)), scales).map(
    lambda pair: (pair[0] * np.float32(pair[1])).astype(np.float32)
)
_rng = np.random.default_rng(0)
EXTREMES = [(_rng.standard_normal((4, 50)) * scale).astype(np.float32) for scale in (1e-25, 1e19, 1e-40)]
# a float32 tile sum of adversarial values errs by up to ~(terms per vector lane) x 2^-24;
# TOLERANCE holds what the kernels deliver on ordinary data
WORST_CASE_TILE = 1e-6


def extremes(test):
    for X in EXTREMES:
        test = example(X)(test)
    return test


@given(matrices)
@extremes
def test_symmetric_with_zero_diagonal(X):
    D = wtraj.pairwise(X)
    np.testing.assert_array_equal(D, D.T)
    assert (np.diag(D) == 0).all()
    assert (D >= 0).all()


@given(matrices)
@extremes
def test_distances_match_the_truth_at_every_magnitude(X):
    assert_close(wtraj.pairwise(X), pairwise_truth(X), WORST_CASE_TILE, 1e-300, what="euclidean")
    inner = wtraj.pairwise(X, metric="inner")
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    error = np.abs(inner - pairwise_truth(X, None, "inner"))
    assert (error <= WORST_CASE_TILE * np.outer(norms, norms)).all()
    if (norms > 0).all():
        cosine = wtraj.pairwise(X, metric="cosine")
        assert_close(cosine, pairwise_truth(X, None, "cosine"), TOLERANCE[("cosine", "float32")], 1e-15)


@given(matrices)
@extremes
def test_step_norms_and_angles_match_the_truth(X):
    X64 = X.astype(np.float64)
    steps = np.linalg.norm(np.diff(X64, axis=0), axis=1)
    assert_close(wtraj.step_norms(X), steps, TOLERANCE[("step_norm", "float32")], 1e-300)
    assert_close(wtraj.step_norms(X), np.diag(wtraj.pairwise(X), 1), WORST_CASE_TILE, 1e-300)
    if X.shape[0] >= 3 and (steps > 0).all():
        # an angle is accurate relative to itself while it is not tiny (test_steps.py covers tiny ones)
        assert_close(wtraj.curvature(X), turning_angle_truth(X64), 1e-9, 1e-12, what="angle")


@given(matrices)
def test_cross_pairs_with_itself_equal_the_self_pairs(X):
    np.testing.assert_allclose(wtraj.pairwise(X, X), wtraj.pairwise(X), rtol=1e-6, atol=1e-30)


@given(matrices, st.integers(-20, 20))
def test_power_of_two_scaling_is_exact(X, exponent):
    # scaling by 2**k changes no rounding, so distances scale exactly, as long as
    # both versions take the same path: float32 tiles for both, or the float64
    # recomputation of sums near float32's range (FLOAT32_TILE_FLOOR) for both
    scale = 2.0**exponent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scaled = X * np.float32(scale)
    squares = pairwise_truth(X, None, "sqeuclidean")
    squares = squares[squares > 0]
    near_floor = X.shape[1] * FLOAT32_TILE_FLOOR * 4
    if squares.size:
        if squares.min() * min(1.0, scale**2) < near_floor or squares.max() * max(1.0, scale**2) > 1e36:
            return
    np.testing.assert_allclose(wtraj.pairwise(scaled), wtraj.pairwise(X) * scale, rtol=1e-12, atol=0)


@given(matrices)
def test_triangle_inequality(X):
    D = wtraj.pairwise(X.astype(np.float64))
    # D[i, k] <= D[i, j] + D[j, k], indexed [i, j, k]
    slack = 1e-12 * (1 + D.max())
    assert (D[:, None, :] <= D[:, :, None] + D[None, :, :] + slack).all()
