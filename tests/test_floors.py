"""bench/floors.py prints issue 14's table of wtraj's kernels against their floors (tiny D here)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_floors_script_prints_every_row_of_the_table():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "floors.py"), "--d", "20000", "--repeats", "1"],
        capture_output=True, text=True, env=env, timeout=600, cwd=REPO / "bench",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "| operation | N | dtype | wtraj (s) | memory floor (s) | compute floor (s) |" in out
    for n in (8, 32, 128):
        for dtype in ("float32", "bfloat16"):
            assert f"| pairwise | {n} | {dtype} |" in out
    for operation in ("step_norms", "curvature", "trajectory_stats"):
        assert f"| {operation} | 32 | float32 |" in out
