"""bench/gpu_check.py runs end to end under Triton's interpreter, prints its tables, and fails on error.

The script is meant for the first GPU lent to the project; here its whole
code path runs on tiny shapes with ``--device cpu``, so that it does not meet
the GPU with a bug.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

REPO = Path(__file__).resolve().parents[1]
SPEED_HEADER = "| op | N | D | dtype | wtraj ms |"


def _run(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


def test_cpu_run_prints_both_tables_and_passes():
    result = _run("--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("### GPU check: CPU")
    assert SPEED_HEADER in out
    for dtype in ("float32", "bfloat16"):
        assert f"| pairwise euclidean | 9 | 1027 | {dtype} |" in out
        assert f"| step_norms | 9 | 1027 | {dtype} |" in out
    assert "| check | max rel. error | limit | status |" in out
    assert "| FAIL |" not in out
    assert "0 accuracy failures" in out


def test_an_accuracy_failure_exits_nonzero():
    result = _run("--device", "cpu", "--inject-error")
    assert result.returncode == 1, result.stdout + result.stderr
    # the first check fails, the rest still run and the table is still printed
    assert "| pairwise euclidean, float32, step 0.001 |" in result.stdout
    assert result.stdout.count("| FAIL |") == 1
    assert SPEED_HEADER in result.stdout
    assert "1 accuracy failures" in result.stdout


def test_cuda_mode_without_a_gpu_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = _run("--quick")
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr


def test_max_error_counts_a_lost_zero_and_a_stray_nan():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from gpu_check import max_error
    finally:
        sys.path.remove(str(REPO / "bench"))
    import numpy as np

    truth = np.array([0.0, 1.0, np.nan])
    assert max_error(np.array([0.0, 1.0 + 1e-7, np.nan]), truth, "euclidean") == pytest.approx(1e-7)
    assert max_error(np.array([1e-30, 1.0, np.nan]), truth, "euclidean") == float("inf")
    assert max_error(np.array([0.0, np.nan, np.nan]), truth, "euclidean") == float("inf")
