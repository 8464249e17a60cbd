"""Properties that hold for every input: symmetry, zero diagonal, steps on the first off-diagonal."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import wtraj

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
shapes = st.tuples(st.integers(2, 7), st.integers(1, 300))
matrices = shapes.flatmap(lambda shape: arrays(np.float32, shape, elements=finite))


@given(matrices)
def test_symmetric_with_zero_diagonal(X):
    D = wtraj.pairwise(X)
    np.testing.assert_array_equal(D, D.T)
    assert (np.diag(D) == 0).all()
    assert (D >= 0).all()


@given(matrices)
def test_step_norms_are_the_first_off_diagonal(X):
    D = wtraj.pairwise(X)
    np.testing.assert_allclose(wtraj.step_norms(X), np.diag(D, 1), rtol=1e-6, atol=1e-30)


@given(matrices)
def test_cross_pairs_with_itself_equal_the_self_pairs(X):
    np.testing.assert_allclose(wtraj.pairwise(X, X), wtraj.pairwise(X), rtol=1e-6, atol=1e-30)


@given(matrices, st.integers(-20, 20))
def test_power_of_two_scaling_is_exact(X, exponent):
    # scaling by 2**k changes no rounding, so distances scale exactly
    scale = np.float32(2.0**exponent)
    np.testing.assert_allclose(
        wtraj.pairwise(X * scale), wtraj.pairwise(X) * float(scale), rtol=1e-12, atol=0
    )


@given(matrices)
def test_triangle_inequality(X):
    D = wtraj.pairwise(X.astype(np.float64))
    # D[i, k] <= D[i, j] + D[j, k], indexed [i, j, k]
    slack = 1e-12 * (1 + D.max())
    assert (D[:, None, :] <= D[:, :, None] + D[None, :, :] + slack).all()
