"""Shared benchmark harness: inputs, the memory floor, and a side-by-side table at the end.

Every provider of one operation is timed in the same run; at the end a table
gives each one's time, its ratio to wtraj and to the memory floor, and its
error against float64. Nothing here asserts a speed.
"""

import os
import platform
from collections import defaultdict
from datetime import date

import numba
import numpy as np
import pytest

# N, D of the benchmark; WTRAJ_BENCH_D shrinks D for a quick run
N_CHECKPOINTS = 32
N_PARAMS = int(os.environ.get("WTRAJ_BENCH_D", 4_000_000))
STEP = 1e-5

_rows = defaultdict(list)


# reassociation lets the sum vectorise: the floor is then bandwidth-bound, not add-latency-bound
@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _parallel_sum(X):
    flat = X.reshape(-1)
    n = flat.shape[0]
    chunks = 64
    partial = np.zeros(chunks)
    for c in numba.prange(chunks):
        acc = 0.0
        for k in range(c * n // chunks, (c + 1) * n // chunks):
            acc += flat[k]
        partial[c] = acc
    return partial.sum()


def memory_floor(X):
    """A plain parallel pass that reads and sums every value of X once: the floor for any kernel."""
    return _parallel_sum(X)


@pytest.fixture(scope="session")
def walk():
    """(32, D) float32 random walk whose steps are 1e-5 of the norm."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal(N_PARAMS, dtype=np.float32)
    steps = rng.standard_normal((N_CHECKPOINTS - 1, N_PARAMS), dtype=np.float32)
    steps *= STEP * np.linalg.norm(start) / np.linalg.norm(steps, axis=1, keepdims=True)
    X = np.empty((N_CHECKPOINTS, N_PARAMS), dtype=np.float32)
    X[0] = start
    np.cumsum(steps, axis=0, out=X[1:])
    X[1:] += start
    memory_floor(X)
    return X


def record(group, provider, benchmark, error=None, note=""):
    """Keep one provider's result for the table printed at the end of the session."""
    stats = benchmark.stats.stats
    _rows[group].append((provider, stats.min, stats.median, error, note))
    benchmark.extra_info.update(provider=provider, max_rel_error=error, note=note)


def max_relative_error(actual, truth):
    actual = np.asarray(actual, dtype=np.float64)
    mask = truth != 0
    return float(np.max(np.abs(actual[mask] - truth[mask]) / np.abs(truth[mask])))


def pytest_terminal_summary(terminalreporter):
    if not _rows:
        return
    write = terminalreporter.write_line
    write("")
    write(f"wtraj benchmarks, {date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, numba threads {numba.get_num_threads()}")
    for group, rows in _rows.items():
        times = {p: t for p, t, *_ in rows}
        wtraj_time = next((t for p, t in times.items() if p.startswith("wtraj")), None)
        floor = times.get("memory floor")
        write("")
        write(f"### {group}")
        write("| provider | min time (s) | median (s) | vs wtraj | vs memory floor "
              "| max rel. error vs float64 | note |")
        write("|---|---|---|---|---|---|---|")
        for provider, best, median, error, note in rows:
            vs_wtraj = f"{best / wtraj_time:.2f}x" if wtraj_time else ""
            vs_floor = f"{best / floor:.2f}x" if floor else ""
            err = "" if error is None else f"{error:.1e}"
            write(f"| {provider} | {best:.4f} | {median:.4f} | {vs_wtraj} | {vs_floor} | {err} | {note} |")
