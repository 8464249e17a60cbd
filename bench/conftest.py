"""Shared benchmark harness: inputs, the floors, and a side-by-side table at the end.

Every provider of one operation is timed in the same run as the floors
(``bench/floors.py``); at the end a table gives each one's time, its ratio to
wtraj and to the binding floor (the larger of the memory floor and, for
pairwise, the compute floor), and its error against float64. Nothing here
asserts a speed.
"""

import os
import platform
import subprocess
from collections import defaultdict
from datetime import datetime, timezone

import floors
import numba
import numpy as np
import pytest

# N, D of the benchmark; WTRAJ_BENCH_D shrinks D for a quick run
N_CHECKPOINTS = 32
N_PARAMS = int(os.environ.get("WTRAJ_BENCH_D", 4_000_000))
STEP = 1e-5

# group -> rows (provider, min s, median s, error, note, floor key)
_rows = defaultdict(list)
# group -> floor key -> {"memory": s, "memory_pass": name, "compute": s or None}
_floors = defaultdict(dict)


def random_walk(n_rows, n_params, seed=0):
    """(n_rows, n_params) float32 random walk whose steps are 1e-5 of the norm."""
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(n_params, dtype=np.float32)
    steps = rng.standard_normal((n_rows - 1, n_params), dtype=np.float32)
    steps *= STEP * np.linalg.norm(start) / np.linalg.norm(steps, axis=1, keepdims=True)
    X = np.empty((n_rows, n_params), dtype=np.float32)
    X[0] = start
    np.cumsum(steps, axis=0, out=X[1:])
    X[1:] += start
    return X


@pytest.fixture(scope="session")
def walk():
    """(32, D) float32 random walk whose steps are 1e-5 of the norm."""
    return random_walk(N_CHECKPOINTS, N_PARAMS)


def measure_floors(group, X, key="float32", pairwise=False):
    """Measure the floors of one input (each candidate pass becomes a row) for the group's table.

    ``X`` is the array the providers read (for bfloat16, its bit patterns as
    uint16); ``pairwise`` adds the compute floor of a symmetric pairwise pass.
    """
    candidates = floors.memory_floor_candidates(X)
    for name, seconds in candidates.items():
        _rows[group].append((f"memory floor candidate ({key}): {name}", seconds, None, None,
                             "read-only pass over the same bytes", key))
    fastest = min(candidates, key=candidates.get)
    entry = {"memory": candidates[fastest], "memory_pass": fastest, "compute": None}
    if pairwise:
        rate = floors.pair_element_rate()
        entry["compute"] = floors.pairwise_compute_floor(X.shape[0], X.shape[1], rate)
        _rows[group].append((f"compute floor ({key})", entry["compute"], None, None,
                             f"N(N-1)/2*D pair-elements at {rate / 1e9:.1f} G/s (sub + FMA, in cache, "
                             f"{numba.config.NUMBA_NUM_THREADS} threads)", key))
    _floors[group][key] = entry


def record(group, provider, benchmark, error=None, note="", key="float32"):
    """Keep one provider's result for the table printed at the end of the session.

    With ``--benchmark-disable`` nothing is timed and nothing is kept.
    """
    benchmark.extra_info.update(provider=provider, max_rel_error=error, note=note)
    if benchmark.stats is None:
        return
    stats = benchmark.stats.stats
    _rows[group].append((provider, stats.min, stats.median, error, note, key))


def max_relative_error(actual, truth):
    actual = np.asarray(actual, dtype=np.float64)
    mask = truth != 0
    return float(np.max(np.abs(actual[mask] - truth[mask]) / np.abs(truth[mask])))


def _binding(entry):
    if entry["compute"] is not None and entry["compute"] > entry["memory"]:
        return entry["compute"], "compute"
    return entry["memory"], "memory"


def _machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                     if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, numba threads {numba.get_num_threads()}"


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pytest_terminal_summary(terminalreporter):
    timed = {g: rows for g, rows in _rows.items() if any(r[2] is not None for r in rows)}
    if not timed:
        return
    write = terminalreporter.write_line
    write("")
    now = datetime.now(timezone.utc)
    write(f"wtraj benchmarks, {now:%Y-%m-%d %H:%M} UTC, commit {_commit()}, {_machine()}")
    for group, rows in timed.items():
        wtraj_time = next((t for p, t, *_ in rows if p.startswith("wtraj")), None)
        write("")
        write(f"### {group}")
        for key, entry in _floors[group].items():
            floor, binds = _binding(entry)
            compute = "" if entry["compute"] is None else f", compute floor {entry['compute']:.4f} s"
            write(f"Floors ({key}): memory {entry['memory']:.4f} s ({entry['memory_pass']}){compute}; "
                  f"binding: {binds}, {floor:.4f} s")
        write("")
        write("| provider | min time (s) | median (s) | vs wtraj | vs binding floor | floor binding "
              "| max rel. error vs float64 | note |")
        write("|---|---|---|---|---|---|---|---|")
        for provider, best, median, error, note, key in rows:
            vs_wtraj = f"{best / wtraj_time:.2f}x" if wtraj_time else ""
            vs_floor, binds = "", ""
            if key in _floors[group]:
                floor, binds = _binding(_floors[group][key])
                vs_floor = f"{best / floor:.2f}x"
                binds = f"{binds} ({key})"
            med = "" if median is None else f"{median:.4f}"
            err = "" if error is None else f"{error:.1e}"
            write(f"| {provider} | {best:.4f} | {med} | {vs_wtraj} | {vs_floor} | {binds} | {err} | {note} |")
