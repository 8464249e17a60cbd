"""Working memory stays O(N x block): no copy of X, and never a float64 copy."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("dtype", ["float16"])
def test_peak_anonymous_memory_is_a_few_blocks(tmp_path, dtype):
    # float16 takes the widening path: every block is converted into a float32 buffer
    n, d = 24, 1_000_000
    path = tmp_path / "walk.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, d))
    rng = np.random.default_rng(0)
    for i in range(n):
        X[i] = rng.standard_normal(d).astype(dtype)
    X.flush()
    del X
    # a fresh process: the page cache of the memory map is file-backed (RssFile) and
    # does not count; what counts is anonymous memory (RssAnon), sampled while it runs
    code = textwrap.dedent(f"""
        import threading, time, numpy as np, wtraj
        def anon():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        X = np.load({str(path)!r}, mmap_mode="r")
        # compile first: both passes measured below
        wtraj.trajectory_stats(X[:, :10000])
        wtraj.pairwise(X[:, :10000], X[:3, :10000], metric="cosine")
        base, peak, done = anon(), [0], threading.Event()
        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], anon())
                time.sleep(0.002)
        t = threading.Thread(target=sample); t.start()
        wtraj.trajectory_stats(X)
        wtraj.pairwise(X, X[:3], metric="cosine")
        done.set(); t.join()
        print(peak[0] - base)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    growth = int(result.stdout.split()[-1])
    itemsize = np.dtype(dtype).itemsize
    # X itself is 48 MB (a float32 copy: 96 MB, float64: 192 MB); the pass holds
    # float32 block buffers of about 16 MB
    assert growth < 0.75 * n * d * itemsize, f"anonymous memory grew by {growth / 2**20:.0f} MiB"


@pytest.mark.parametrize("call", ["pairwise", "trajectory_stats"])
def test_many_checkpoints_peak_at_the_result_plus_the_block_budget(call):
    # N = 20,000, D = 2 once peaked at 9.5 GB for a 3.2 GB result (copies of the
    # whole matrix to symmetrise and finalise it); at N = 1,500 the same ratio shows
    import tracemalloc

    import wtraj

    n, budget = 1500, 1 << 20
    X = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    getattr(wtraj, call)(X[:60])  # compile first
    tracemalloc.start()
    try:
        getattr(wtraj, call)(X, memory_budget=budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result_bytes = n * n * 8
    assert peak <= 1.25 * result_bytes + budget, f"peak {peak / result_bytes:.2f} x the result"
