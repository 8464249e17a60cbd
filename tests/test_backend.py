"""Backend choice: backend=, WTRAJ_BACKEND, auto, and import wtraj without torch or triton."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import TOLERANCE, random_walk
from truth import pairwise_truth

import wtraj
from wtraj._backend import resolve_backend


def test_auto_follows_the_data():
    assert resolve_backend(None, "cpu") == "numba"
    assert resolve_backend("auto", "cuda") == "triton"


def test_environment_override(monkeypatch):
    monkeypatch.setenv("WTRAJ_BACKEND", "reference")
    assert resolve_backend(None, "cpu") == "reference"
    assert resolve_backend("numba", "cpu") == "numba"
    monkeypatch.setenv("WTRAJ_BACKEND", "fortran")
    with pytest.raises(ValueError, match="WTRAJ_BACKEND='fortran'"):
        wtraj.pairwise(random_walk(2, 5))


def test_unknown_backend_argument():
    with pytest.raises(ValueError, match="backend='cuda' is not a backend"):
        wtraj.pairwise(random_walk(2, 5), backend="cuda")


def test_cuda_data_refuses_cpu_backends():
    with pytest.raises(ValueError, match="CUDA tensor"):
        resolve_backend("numba", "cuda")


def test_reference_and_numba_match_the_truth():
    X = random_walk(6, 4000, 1e-4, seed=51)
    for backend in ("numba", "reference"):
        np.testing.assert_allclose(
            wtraj.pairwise(X, backend=backend), pairwise_truth(X), rtol=TOLERANCE[("euclidean", "float32")]
        )


def test_import_without_torch_or_triton():
    # a fresh interpreter where importing torch or triton fails
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'triton'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, wtraj\n"
        "from wtraj import pairwise, curvature, step_norms, trajectory_stats\n"
        "X = np.random.default_rng(0).standard_normal((4, 100))\n"
        "assert pairwise(X).shape == (4, 4)\n"
        "assert 'torch' not in sys.modules and 'triton' not in sys.modules\n"
        "try:\n"
        "    pairwise(X, backend='triton')\n"
        "except (ImportError, ValueError) as e:\n"
        "    print('refused:', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TRITON_INTERPRET": "1", "PATH": ""},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: backend='triton' is not available" in result.stdout


def test_public_names():
    from wtraj import curvature, pairwise, step_norms, trajectory_stats  # noqa: F401

    assert "pairwise" in dir(wtraj)
    with pytest.raises(AttributeError):
        wtraj.no_such_function  # noqa: B018


def test_compiled_kernels_are_reused_by_the_next_process(tmp_path):
    # the pairwise kernels are built per term; a new process must load them from
    # Numba's disk cache instead of compiling them again (minutes over a test run)
    code = textwrap.dedent("""
        import numpy as np
        from wtraj.kernels.numba.pairwise import _kernels, pairwise_block
        x = np.ones((3, 10))
        pairwise_block(x, 0, 10, None, 0, 0, "dot", np.zeros((3, 3)))
        stats = _kernels("dot", x.dtype)[0].stats
        print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    first, second = ([int(v) for v in run.stdout.split()] for run in runs)
    assert first == [0, 1]
    assert second == [1, 0]


FIRST_CALLS = textwrap.dedent("""
    import gc
    import sys
    import numpy as np
    import wtraj
    X = np.random.default_rng(0).random((5, 300), dtype=np.float32)
    wtraj.pairwise(X)
    wtraj.pairwise(X, metric="cosine")
    wtraj.step_norms(X)
    wtraj.curvature(X)
    wtraj.trajectory_stats(X)
    print(sorted(m for m in ("torch", "triton", "matplotlib", "pandas", "sklearn") if m in sys.modules))
    from numba.core.dispatcher import Dispatcher
    # kernels compiled in this process rather than loaded from the disk cache
    print(sum(sum(d.stats.cache_misses.values()) for d in gc.get_objects() if isinstance(d, Dispatcher)))
""")


def _first_calls(env=None) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", FIRST_CALLS], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr
    heavy, compiled = result.stdout.split("\n")[:2]
    return heavy, int(compiled)


def test_first_calls_on_numpy_load_no_torch_triton_or_matplotlib():
    # start-up of a new process: NumPy input on the CPU needs Numba, nothing heavier
    assert _first_calls()[0] == "[]"


def test_first_calls_of_a_new_process_compile_nothing(tmp_path):
    # every kernel behind the first calls is cached on disk: the next process only loads them
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    assert _first_calls(env)[1] > 0
    assert _first_calls(env)[1] == 0
