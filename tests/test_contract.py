"""Every kernel backend keeps the one contract of ``wtraj.kernels.contract``: interface, ops, rows."""

import importlib
import inspect

import numpy as np
import pytest
from conftest import BACKENDS

from wtraj.kernels.contract import ALL_PATH_SUMS, N_PATH_SUMS, Backend, PairOp, PathSum
from wtraj.path import CURVATURE_SUMS, STEP_SUMS

MODULES = {name: f"wtraj.kernels.{name}" for name in BACKENDS}


def _backend(name):
    return importlib.import_module(MODULES[name])


def _array(backend, values):
    if backend == "triton":
        import torch

        return torch.from_numpy(values)
    return values


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_has_the_protocol_signatures(name):
    module = _backend(name)
    assert isinstance(module, Backend)
    for function in ("zeros", "to_numpy", "pairwise_block", "steps_block"):
        expected = list(inspect.signature(getattr(Backend, function)).parameters)[1:]
        assert list(inspect.signature(getattr(module, function)).parameters) == expected, function


def test_ops_are_their_strings_and_have_distinct_codes():
    assert PairOp("sqdiff") is PairOp.SQDIFF and PairOp.UNITDIFF == "unitdiff"
    assert sorted(op.code for op in PairOp) == list(range(len(PairOp)))


# the sets of rows the library's functions ask for, and each row alone
ROW_SETS = {
    "all": ALL_PATH_SUMS,
    "steps": STEP_SUMS,
    "curvature": CURVATURE_SUMS,
    **{row.name: frozenset({row}) for row in PathSum},
}


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("rows", list(ROW_SETS))
def test_steps_block_fills_each_named_row(name, rows):
    # every row asked for checked against its definition, so that no backend can swap two of them
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 37)).astype(np.float32)
    x = X.astype(np.float64)
    module = _backend(name)
    data = _array(name, X)
    out = module.zeros((N_PATH_SUMS, 5), like=data)
    module.steps_block(data, 0, 37, out, ROW_SETS[rows])
    out = module.to_numpy(out)
    u, v = x[1:-1] - x[:-2], x[2:] - x[1:-1]
    expected = {
        PathSum.NORM2: (x**2).sum(axis=1),
        PathSum.STEP2: ((x[1:] - x[:-1]) ** 2).sum(axis=1),
        PathSum.BEND2: ((v - u) ** 2).sum(axis=1),
        PathSum.SKIP2: ((x[2:] - x[:-2]) ** 2).sum(axis=1),
        PathSum.STEP_DOT: (u * v).sum(axis=1),
    }
    assert len(expected) == N_PATH_SUMS
    for row, values in expected.items():
        if row not in ROW_SETS[rows]:
            continue
        np.testing.assert_allclose(out[row, : len(values)], values, rtol=1e-12, atol=1e-12, err_msg=row.name)
        assert not out[row, len(values) :].any(), f"{row.name}: entries past the last one are not zero"


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("op", list(PairOp), ids=lambda op: op.value)
def test_pairwise_block_sums_each_op(name, op):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 41)).astype(np.float32)
    x = X.astype(np.float64)
    scales = 1 / np.linalg.norm(x, axis=1)
    module = _backend(name)
    data = _array(name, X)
    out = module.zeros((3, 3), like=data)
    # the op given as its string value, as the engine's callers may
    module.pairwise_block(data, 0, 41, None, 0, 0, op.value, out,
                          scales=(scales, scales) if op is PairOp.UNITDIFF else None)
    out = module.to_numpy(out)
    a, b = x[:, None, :], x[None, :, :]
    expected = {
        PairOp.SQDIFF: ((a - b) ** 2).sum(axis=2),
        PairOp.ABSDIFF: np.abs(a - b).sum(axis=2),
        PairOp.DOT: (a * b).sum(axis=2),
        PairOp.UNITDIFF: ((a * scales[:, None, None] - b * scales[None, :, None]) ** 2).sum(axis=2),
    }[op]
    upper = np.triu_indices(3, k=1)
    np.testing.assert_allclose(out[upper], expected[upper], rtol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_an_unknown_op_is_refused(name):
    module = _backend(name)
    data = _array(name, np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="not a valid PairOp"):
        module.pairwise_block(data, 0, 4, None, 0, 0, "sqdif", module.zeros((2, 2), like=data))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("op", list(PairOp), ids=lambda op: op.value)
@pytest.mark.parametrize("n", [5, 50], ids=["few-rows", "many-rows"])
def test_pairwise_block_adds_the_path_sums_it_is_given(name, op, n):
    # the pairs as without steps, the path sums as steps_block's (Numba fuses them for few rows)
    if name == "triton" and n == 50:
        pytest.skip("the Triton interpreter is slow; its pairwise_block calls steps_block either way")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, 2100)).astype(np.float32)
    scales = 1 / np.linalg.norm(X.astype(np.float64), axis=1)
    module = _backend(name)
    data = _array(name, X)
    kwargs = {"scales": (scales, scales)} if op is PairOp.UNITDIFF else {}
    alone, fused = module.zeros((n, n), like=data), module.zeros((n, n), like=data)
    module.pairwise_block(data, 0, 2100, None, 0, 0, op, alone, **kwargs)
    # every set of rows is a kernel of its own to compile: a subset with one op only
    for rows in (ALL_PATH_SUMS, STEP_SUMS) if op is PairOp.SQDIFF else (ALL_PATH_SUMS,):
        expected = module.zeros((N_PATH_SUMS, n), like=data)
        module.steps_block(data, 0, 2100, expected, rows)
        steps = module.zeros((N_PATH_SUMS, n), like=data)
        fused[:] = 0
        module.pairwise_block(data, 0, 2100, None, 0, 0, op, fused, steps=steps, path_sums=rows, **kwargs)
        assert np.array_equal(module.to_numpy(fused), module.to_numpy(alone))
        assert np.array_equal(module.to_numpy(steps)[sorted(rows)], module.to_numpy(expected)[sorted(rows)])
