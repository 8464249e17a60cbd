"""Floors for the kernel benchmarks: the fastest any code could go, measured on this machine.

Memory floor: the fastest of several read-only passes over the same bytes
(NumPy reductions on one thread, a Numba pass with independent SIMD
accumulators on one thread and on all threads: a float32 sum, or for
bfloat16 bit patterns an unsigned max). No kernel that reads every
value once can beat the fastest of them, so that one is the floor; a single
candidate can be slow for reasons of its own (a latency-bound add chain, a
float64 widening), which is why several are taken.

Compute floor for ``pairwise``: the measured rate of the kernel's own
instruction mix (per pair-element one subtraction and one fused multiply-add,
rows of x against rows of y held in registers: the faster of a 2 x 4 and a
4 x 4 register tile, the data in L1 cache, all cores) times the
``N (N - 1) / 2 * D`` pair-elements a symmetric pairwise pass must do.

The binding floor of a benchmark is the larger of the two.

Run as a script, it prints issue 14's summary table: wtraj's kernels at
N = 8, 32, 128 (pairwise, float32 and bfloat16) and N = 32 (step norms,
curvature, trajectory_stats), each against its binding floor and target,
every time the best of several calls::

    python bench/floors.py [--d 4000000] [--repeats 5]
"""

import argparse
import time
from datetime import datetime, timezone

import numba
import numpy as np
from numba import prange

# Columns summed in float32 before each float64 addition: long enough to
# vectorise, short enough that float32 rounding does not matter for a floor.
SUM_TILE = 4096
# Columns of the in-cache block of the compute floor: 8 rows x 1024 float32 = 32 KiB, in L1.
COMPUTE_WIDTH = 1024
# About 20 ms per call: with a few ms, waking the worker threads dominated and the rate read 10x low.
COMPUTE_REPEATS = 100_000


@numba.njit(fastmath=True, cache=True)
def _tile_sum(flat, start, width):
    # unsigned indices: no negative-index wraparound, so LLVM vectorises with interleaved accumulators
    acc = np.float32(0.0)
    for k in range(np.uint64(width)):
        acc += flat[np.uint64(start) + k]
    return acc


@numba.njit(parallel=True, fastmath=True, cache=True)
def _simd_sum(flat):
    n = flat.shape[0]
    n_tiles = (n + SUM_TILE - 1) // SUM_TILE
    partial = np.zeros(n_tiles)
    for t in prange(n_tiles):
        start = t * SUM_TILE
        partial[t] = _tile_sum(flat, start, min(SUM_TILE, n - start))
    return partial.sum()


@numba.njit(cache=True)
def _tile_max(flat, start, width):
    acc = flat[start]
    for k in range(np.uint64(width)):
        acc = max(acc, flat[np.uint64(start) + k])
    return acc


@numba.njit(parallel=True, cache=True)
def _simd_max(flat):
    # for bfloat16 bit patterns (uint16): the same bytes as the kernels read, without widening
    n = flat.shape[0]
    n_tiles = (n + SUM_TILE - 1) // SUM_TILE
    partial = np.zeros(n_tiles, dtype=flat.dtype)
    for t in prange(n_tiles):
        start = t * SUM_TILE
        partial[t] = _tile_max(flat, start, min(SUM_TILE, n - start))
    return partial.max()


def _best_seconds(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _with_threads(kernel, flat, threads):
    def run():
        saved = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            kernel(flat)
        finally:
            numba.set_num_threads(saved)

    return run


def memory_floor_candidates(X, repeats=7):
    """Best time (s) of each read-only pass over the bytes of ``X``: ``{name: seconds}``."""
    flat = np.ascontiguousarray(X).reshape(-1)
    if flat.dtype.kind != "f":
        # bfloat16 as bit patterns: the same bytes, read as unsigned integers
        flat = flat.view(np.uint16)
    all_threads = numba.config.NUMBA_NUM_THREADS
    candidates = {"numpy max (1 thread)": lambda: np.max(flat)}
    if flat.dtype.kind == "f":
        candidates["numpy sum, float32 (1 thread)"] = lambda: flat.sum(dtype=np.float32)
        candidates["numba SIMD sum (1 thread)"] = _with_threads(_simd_sum, flat, 1)
        candidates[f"numba SIMD sum ({all_threads} threads)"] = _with_threads(_simd_sum, flat, all_threads)
    else:
        candidates["numba SIMD max (1 thread)"] = _with_threads(_simd_max, flat, 1)
        candidates[f"numba SIMD max ({all_threads} threads)"] = _with_threads(_simd_max, flat, all_threads)
    return {name: _best_seconds(fn, repeats) for name, fn in candidates.items()}


def memory_floor(X, repeats=7):
    """(seconds, name) of the fastest read-only pass over the bytes of ``X``."""
    times = memory_floor_candidates(X, repeats)
    name = min(times, key=times.get)
    return times[name], name


@numba.njit(fastmath=True, cache=True)
def _sqdiff_2x4(block, repeats):
    # block rows 0-1 are x, rows 2-5 are y: 6 loads, 8 subtractions, 8 FMAs per column
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0.0)
    for _ in range(repeats):
        for k in range(np.uint64(block.shape[1])):
            x0 = block[0, k]
            x1 = block[1, k]
            y0 = block[2, k]
            y1 = block[3, k]
            y2 = block[4, k]
            y3 = block[5, k]
            d = x0 - y0
            a0 += d * d
            d = x0 - y1
            a1 += d * d
            d = x0 - y2
            a2 += d * d
            d = x0 - y3
            a3 += d * d
            d = x1 - y0
            b0 += d * d
            d = x1 - y1
            b1 += d * d
            d = x1 - y2
            b2 += d * d
            d = x1 - y3
            b3 += d * d
    return a0 + a1 + a2 + a3 + b0 + b1 + b2 + b3


@numba.njit(fastmath=True, cache=True)
def _sqdiff_4x4(block, repeats):
    # block rows 0-3 are x, rows 4-7 are y: 8 loads, 16 subtractions, 16 FMAs per column
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0.0)
    c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = np.float32(0.0)
    for _ in range(repeats):
        for k in range(np.uint64(block.shape[1])):
            x0 = block[0, k]
            x1 = block[1, k]
            x2 = block[2, k]
            x3 = block[3, k]
            y0 = block[4, k]
            y1 = block[5, k]
            y2 = block[6, k]
            y3 = block[7, k]
            d = x0 - y0
            a0 += d * d
            d = x0 - y1
            a1 += d * d
            d = x0 - y2
            a2 += d * d
            d = x0 - y3
            a3 += d * d
            d = x1 - y0
            b0 += d * d
            d = x1 - y1
            b1 += d * d
            d = x1 - y2
            b2 += d * d
            d = x1 - y3
            b3 += d * d
            d = x2 - y0
            c0 += d * d
            d = x2 - y1
            c1 += d * d
            d = x2 - y2
            c2 += d * d
            d = x2 - y3
            c3 += d * d
            d = x3 - y0
            e0 += d * d
            d = x3 - y1
            e1 += d * d
            d = x3 - y2
            e2 += d * d
            d = x3 - y3
            e3 += d * d
    return a0 + a1 + a2 + a3 + b0 + b1 + b2 + b3 + c0 + c1 + c2 + c3 + e0 + e1 + e2 + e3


@numba.njit(parallel=True, cache=True)
def _sqdiff_all_threads(blocks, repeats, four_rows):
    out = np.zeros(blocks.shape[0])
    for t in prange(blocks.shape[0]):
        if four_rows:
            out[t] = _sqdiff_4x4(blocks[t], repeats // 2)
        else:
            out[t] = _sqdiff_2x4(blocks[t, :6], repeats)
    return out


def pair_element_rate(repeats=5):
    """Pair-elements per second of the sub + FMA mix on in-cache data, all threads (the faster tile)."""
    threads = numba.config.NUMBA_NUM_THREADS
    rng = np.random.default_rng(0)
    blocks = rng.standard_normal((threads, 8, COMPUTE_WIDTH), dtype=np.float32)
    # 2 x 4 tiles: 8 pair-elements per column and repeat; 4 x 4 tiles: 16, for half the repeats
    seconds = min(
        _best_seconds(lambda four=four: _sqdiff_all_threads(blocks, COMPUTE_REPEATS, four), repeats)
        for four in (False, True)
    )
    return threads * 8 * COMPUTE_WIDTH * COMPUTE_REPEATS / seconds


def pairwise_compute_floor(n_rows, n_cols, rate=None):
    """Seconds the symmetric pairwise pass needs at the measured sub + FMA rate."""
    rate = pair_element_rate() if rate is None else rate
    return n_rows * (n_rows - 1) / 2 * n_cols / rate


# issue 14's targets: pairwise, step norms and curvature within 1.3x of the binding floor;
# trajectory_stats within 1.1x of pairwise + step_norms, which it computes in one pass
TARGET = 1.3
STATS_TARGET = 1.1
PAIRWISE_ROWS = (8, 32, 128)
STEPS_ROWS = 32


def _summary_rows(n_params, repeats):
    import torch
    from conftest import random_walk

    import wtraj

    rate = pair_element_rate()
    threads = numba.config.NUMBA_NUM_THREADS
    yield f"pair-element rate (sub + FMA, in cache, {threads} threads): {rate / 1e9:.1f} G/s"
    yield ""
    yield ("| operation | N | dtype | wtraj (s) | memory floor (s) | compute floor (s) | binds "
           "| vs binding floor | target | met? |")
    yield "|---|---|---|---|---|---|---|---|---|---|"

    def row(operation, n, dtype, seconds, memory, compute, target_text, ratio, met):
        binds = "compute" if compute is not None and compute > memory else "memory"
        compute_text = "" if compute is None else f"{compute:.4f}"
        return (f"| {operation} | {n} | {dtype} | {seconds:.4f} | {memory:.4f} | {compute_text} | {binds} "
                f"| {ratio} | {target_text} | {'yes' if met else 'no'} |")

    for n in PAIRWISE_ROWS:
        walk = random_walk(n, n_params)
        for dtype in ("float32", "bfloat16"):
            X = walk if dtype == "float32" else torch.from_numpy(walk).to(torch.bfloat16)
            # the bytes the kernels read: bfloat16 as its bit patterns
            data = walk if dtype == "float32" else X.view(torch.int16).numpy().view(np.uint16)
            seconds = _best_seconds(lambda X=X: wtraj.pairwise(X, backend="numba"), repeats)
            memory = memory_floor(data, repeats)[0]
            compute = pairwise_compute_floor(n, n_params, rate)
            ratio = seconds / max(memory, compute)
            yield row("pairwise", n, dtype, seconds, memory, compute, f"<= {TARGET}x", f"{ratio:.2f}x",
                      ratio <= TARGET)
    walk = random_walk(STEPS_ROWS, n_params)
    memory = memory_floor(walk, repeats)[0]
    times = {
        name: _best_seconds(lambda fn=fn: fn(walk, backend="numba"), repeats)
        for name, fn in (("pairwise", wtraj.pairwise), ("step_norms", wtraj.step_norms),
                         ("curvature", wtraj.curvature), ("trajectory_stats", wtraj.trajectory_stats))
    }
    for name in ("step_norms", "curvature"):
        ratio = times[name] / memory
        yield row(name, STEPS_ROWS, "float32", times[name], memory, None, f"<= {TARGET}x", f"{ratio:.2f}x",
                  ratio <= TARGET)
    parts = times["pairwise"] + times["step_norms"]
    ratio = times["trajectory_stats"] / parts
    compute = pairwise_compute_floor(STEPS_ROWS, n_params, rate)
    yield row("trajectory_stats", STEPS_ROWS, "float32", times["trajectory_stats"], memory, compute,
              f"<= {STATS_TARGET}x of pairwise + step_norms",
              f"{times['trajectory_stats'] / max(memory, compute):.2f}x "
              f"({ratio:.2f}x of pairwise + step_norms, {parts:.4f} s)", ratio <= STATS_TARGET)


def main(argv=None):
    parser = argparse.ArgumentParser(description="issue 14's table: wtraj's kernels against their floors")
    parser.add_argument("--d", type=int, default=4_000_000, help="parameters per checkpoint (D)")
    parser.add_argument("--repeats", type=int, default=5, help="calls per time (the best is kept)")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc)
    print(f"wtraj kernels against their floors, D = {args.d:,}, {started:%Y-%m-%d %H:%M} UTC, "
          f"numba threads {numba.config.NUMBA_NUM_THREADS}, best of {args.repeats}")
    print()
    for line in _summary_rows(args.d, args.repeats):
        print(line, flush=True)


if __name__ == "__main__":
    main()
