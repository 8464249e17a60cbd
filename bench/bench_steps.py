"""step_norms, curvature and trajectory_stats (O(N D)) beside the memory floor and NumPy/torch.

Run: python -m pytest bench/bench_steps.py --benchmark-only -s
"""

import numpy as np
import pytest
from conftest import N_CHECKPOINTS, N_PARAMS, max_relative_error, measure_floors, record

import wtraj

GROUP = f"step norms and curvature (N={N_CHECKPOINTS}, D={N_PARAMS:,}, float32)"


@pytest.fixture(scope="module")
def truth(walk):
    return wtraj.step_norms(walk, backend="reference")


def _run(benchmark, fn, rounds=5):
    fn()
    return benchmark.pedantic(fn, rounds=rounds, iterations=1)


def test_wtraj_step_norms(benchmark, walk, truth):
    s = _run(benchmark, lambda: wtraj.step_norms(walk))
    record(GROUP, "wtraj step_norms (numba)", benchmark, max_relative_error(s, truth))


def test_wtraj_curvature(benchmark, walk):
    _run(benchmark, lambda: wtraj.curvature(walk))
    record(GROUP, "wtraj curvature (numba)", benchmark)


def test_wtraj_trajectory_stats(benchmark, walk, truth):
    st = _run(benchmark, lambda: wtraj.trajectory_stats(walk), rounds=3)
    record(GROUP, "wtraj trajectory_stats (all, one pass)", benchmark,
           max_relative_error(st.step_norms, truth))


# autouse: it runs under --benchmark-only too, in the same run as the providers
@pytest.fixture(scope="module", autouse=True)
def measured_floors(walk):
    measure_floors(GROUP, walk)


def test_numpy_diff_norm(benchmark, walk, truth):
    s = _run(benchmark, lambda: np.linalg.norm(np.diff(walk, axis=0), axis=1), rounds=3)
    record(GROUP, "numpy norm(diff(X))", benchmark, max_relative_error(s, truth))


def test_torch_diff_norm(benchmark, walk, truth):
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(walk)
    s = _run(benchmark, lambda: torch.linalg.vector_norm(X[1:] - X[:-1], dim=1).numpy(), rounds=3)
    record(GROUP, "torch vector_norm(X[1:] - X[:-1])", benchmark, max_relative_error(s, truth))
