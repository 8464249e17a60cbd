"""One prepared GPU check: every Triton kernel against a float64 truth, then timed beside its floors.

Run on a machine with a CUDA GPU and paste the printed markdown into bench/RESULTS.md::

    python bench/gpu_check.py            # full sizes
    python bench/gpu_check.py --quick    # small sizes, under 2 minutes
    python bench/gpu_check.py --device cpu   # the same code under TRITON_INTERPRET=1, tiny sizes

1. Correctness: wtraj with ``backend="triton"`` (pairwise: the five metrics,
   self and cross; step norms; turning angles) on float32, float16 and
   bfloat16 random walks with steps of 1e-3 to 1e-7 of the norm, against
   wtraj's float64 reference backend on the host; and a cosine whose change is
   mostly radial (rows shrinking 0.1% a step while turning by 1e-6).
2. Speed: every timed result is checked too, against a float64 truth of
   direct differences computed on the device by torch (selected rows against
   all, chunked over the columns). Shapes (N, D), float32 and bfloat16::

       full:  (8, 2**27)  (64, 2**25)  (256, 2**23)   4, 8, 8 GiB of float32
       quick: (8, 2**22)  (64, 2**20)  (256, 2**18)

   The full shapes fit an 80 GB card beside ``torch.cdist``, whose matmul mode
   holds about three float32 copies of X; a shape whose float32 copy times
   ``MEMORY_FACTOR`` exceeds the card's memory is skipped and said so.
   Floors: memory = bytes of X / measured bandwidth (a torch float32 sum of
   the same tensor); compute (pairwise) = N(N-1)/2 * D pair-elements, each a
   subtraction and a fused multiply-add: two instructions, at half the
   measured float32 matmul rate in flop/s (TF32 off; one FMA counts two
   flops). The binding floor is the larger; the target is >= 50% of it.

Exit status: 1 if any result, checked or timed, is outside its accuracy limit
(``LIMITS``); 0 otherwise. Speed never fails the run. ``--inject-error``
perturbs the first checked result by 1e-3 to show that a failure is caught.

Wall time, worst case on an H100/H200 (full mode; HBM 3.3-4.8 TB/s, float32
about 50-60 TFLOP/s): Triton compiles about 40 kernel variants (pairwise op x
symmetric x precision x tile shape x input dtype, and steps per dtype), 1-3 s
each: at most 2 minutes. Correctness: 73 wtraj calls at N = 9, D = 1,000,003
on the GPU and as many float64 reference calls on the host (about 0.3 s each):
about 40 s. Timing: per shape and dtype the walk is built (under 1 s), then
``do_bench`` runs at least 7 calls of each timed function; the largest pass
is N = 256, D = 2**23: 2.7e11 pair-elements, 22 ms at the compute floor, so
even a kernel at 10% of its floor takes 1.5 s per ``do_bench``, about 10 s
per shape with cdist, step norms, trajectory_stats and the truth (8 rows x
all, float64, memory-bound: under 1 s): at most 1 minute for the six shapes.
Total: under 4 minutes, well inside one 8-minute call. ``--quick``: the same
compilation with D 32-128x smaller: under 2 minutes, nearly all compilation.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Plan:
    """The sizes of one mode."""

    # D of the correctness walks (odd: masked tile edges) and of the radial-cosine rows
    check_width: int
    check_steps: tuple[float, ...]
    # (N, D) of the timed passes
    timed_shapes: tuple[tuple[int, int], ...]
    # rows compared with the device's float64 truth in each timed pass (against all rows)
    truth_rows: int


PLANS = {
    "full": Plan(1_000_003, (1e-3, 1e-5, 1e-7), ((8, 2**27), (64, 2**25), (256, 2**23)), 8),
    "quick": Plan(65_537, (1e-3, 1e-7), ((8, 2**22), (64, 2**20), (256, 2**18)), 8),
    # Triton's interpreter runs every program in Python: tiny shapes, same code path
    "interpreted": Plan(1_027, (1e-3, 1e-7), ((9, 1_027),), 3),
}
CHECK_ROWS = 9
TIMED_STEP = 1e-5
# a shape runs only if this many float32 copies of X fit in the card's memory (cdist's matmul mode)
MEMORY_FACTOR = 4.5
# device memory per chunk of the float64 truth
TRUTH_CHUNK_BYTES = 2 << 30
# the share of the binding floor the issue asks of a GPU kernel
TARGET_FRACTION = 0.5

# Accuracy limits, by quantity: relative to the float64 truth, elementwise where the truth is
# nonzero ("inner": relative to the largest |truth|). Float32 tile sums: the 1e-6 target
# (the CPU kernels deliver 1e-7, tests/conftest.py); float64 sums (steps, angles): 1e-12;
# cosine from float64 differences of unit vectors: 1e-9, as in tests/conftest.py.
LIMITS = {
    "euclidean": 1e-6,
    "sqeuclidean": 1e-6,
    "cityblock": 1e-6,
    "inner": 1e-6,
    "cosine": 1e-9,
    "step_norm": 1e-12,
    "angle": 1e-12,
}
# the perturbation of --inject-error: far above every limit
INJECTED_ERROR = 1e-3


@dataclass
class Checker:
    """Compares results with their truth, keeps a markdown row per comparison, counts failures."""

    inject_error: bool = False
    rows: list[str] = field(default_factory=list)
    failures: int = 0

    def compare(self, what, got, truth, quantity) -> float:
        got = np.array(got, dtype=np.float64)
        truth = np.asarray(truth, dtype=np.float64)
        if self.inject_error:
            got = got * (1 + INJECTED_ERROR)
            self.inject_error = False
        error = max_error(got, truth, quantity)
        limit = LIMITS[quantity]
        ok = error <= limit
        self.failures += not ok
        self.rows.append(f"| {what} | {error:.1e} | {limit:g} | {'ok' if ok else 'FAIL'} |")
        return error


def max_error(got, truth, quantity) -> float:
    """The largest error of ``got``; NaN where the truth is finite (or the reverse) counts as infinite."""
    both_nan = np.isnan(got) & np.isnan(truth)
    if np.any(np.isnan(got) != np.isnan(truth)):
        return float("inf")
    got, truth = got[~both_nan], truth[~both_nan]
    if got.size == 0:
        return 0.0
    if quantity == "inner":
        scale = max(float(np.max(np.abs(truth))), np.finfo(float).tiny)
        return float(np.max(np.abs(got - truth))) / scale
    nonzero = truth != 0
    if np.any(got[~nonzero] != 0):
        # a zero truth (identical rows) must come out exactly zero
        return float("inf")
    if not np.any(nonzero):
        return 0.0
    return float(np.max(np.abs(got[nonzero] - truth[nonzero]) / np.abs(truth[nonzero])))


def walk(torch, n, d, step, dtype, device, seed=0):
    """(n, d) random walk of ``dtype`` on ``device``, steps ``step`` of the norm, built a row at a time."""
    gen = torch.Generator(device=device).manual_seed(seed)
    current = torch.randn(d, device=device, generator=gen)
    step_length = step * float(current.norm())
    X = torch.empty(n, d, device=device, dtype=dtype)
    X[0] = current.to(dtype)
    for i in range(1, n):
        move = torch.randn(d, device=device, generator=gen)
        current += move.mul_(step_length / float(move.norm()))
        X[i] = current.to(dtype)
    return X


def check_correctness(torch, wtraj, plan, device, checker):
    """Every Triton path against the float64 reference backend on the host."""
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    metrics = {"euclidean": "euclidean", "sqeuclidean": "sqeuclidean", "cosine": "cosine",
               "inner": "inner", "cityblock": "cityblock"}
    for dtype_name, dtype in dtypes.items():
        for step in plan.check_steps:
            X = walk(torch, CHECK_ROWS, plan.check_width, step, dtype, device, seed=1)
            host = X.cpu()
            label = f"{dtype_name}, step {step:g}"
            for metric, quantity in metrics.items():
                got = wtraj.pairwise(X, metric=metric, backend="triton")
                truth = wtraj.pairwise(host, metric=metric, backend="reference")
                checker.compare(f"pairwise {metric}, {label}", got, truth, quantity)
            got = wtraj.pairwise(X[:4], X[3:], backend="triton")
            truth = wtraj.pairwise(host[:4], host[3:], backend="reference")
            checker.compare(f"pairwise euclidean X[:4] vs X[3:], {label}", got, truth, "euclidean")
            got = wtraj.step_norms(X, backend="triton")
            truth = wtraj.step_norms(host, backend="reference")
            checker.compare(f"step_norms, {label}", got, truth, "step_norm")
            with warnings.catch_warnings():
                # rows that the dtype rounds to the same values: NaN angles, compared as such
                warnings.simplefilter("ignore", RuntimeWarning)
                got = wtraj.curvature(X, backend="triton")
                truth = wtraj.curvature(host, backend="reference")
            checker.compare(f"curvature (turning angle), {label}", got, truth, "angle")
    # weight decay: rows shrinking by 0.1% a step while turning by 1e-6 (issue 11)
    gen = torch.Generator(device=device).manual_seed(2)
    rows = [torch.randn(plan.check_width, device=device, generator=gen, dtype=torch.float64)]
    for _ in range(5):
        noise = torch.randn(plan.check_width, device=device, generator=gen, dtype=torch.float64)
        rows.append(0.999 * rows[-1] + 1e-6 * noise)
    X = torch.stack(rows).float()
    got = wtraj.pairwise(X, metric="cosine", backend="triton")
    truth = wtraj.pairwise(X.cpu(), metric="cosine", backend="reference")
    checker.compare("pairwise cosine, radial change, float32", got, truth, "cosine")


def truth_distances(torch, X, rows):
    """(len(rows), N) float64 euclidean distances of the given rows to every row, on X's device.

    Direct differences in float64 (exact for float32 and bfloat16 values),
    squared and summed in float64, a chunk of columns at a time.
    """
    n, d = X.shape
    chunk = max(1, TRUTH_CHUNK_BYTES // (8 * n))
    sums = torch.zeros(len(rows), n, dtype=torch.float64, device=X.device)
    for start in range(0, d, chunk):
        block = X[:, start : start + chunk].to(torch.float64)
        for r, i in enumerate(rows):
            sums[r] += (block - block[i]).square_().sum(dim=1)
    return sums.sqrt_().cpu().numpy()


def truth_steps(torch, X):
    """(N-1,) float64 step norms |X[i+1] - X[i]| on X's device, a chunk of columns at a time."""
    n, d = X.shape
    chunk = max(1, TRUTH_CHUNK_BYTES // (8 * n))
    sums = torch.zeros(n - 1, dtype=torch.float64, device=X.device)
    for start in range(0, d, chunk):
        block = X[:, start : start + chunk].to(torch.float64)
        sums += block.diff(dim=0).square_().sum(dim=1)
    return sums.sqrt_().cpu().numpy()


def make_timer(torch, triton, device):
    """A function returning the time (ms) of one call: ``do_bench`` on CUDA, best of 3 on the CPU."""
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench

    def best_of_three(fn):
        fn()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best * 1e3

    return best_of_three


def float32_rate(torch, device, timer) -> float:
    """Measured float32 matmul rate in flop/s (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    size = 8192 if device == "cuda" else 256
    a = torch.randn(size, size, device=device)
    ms = timer(lambda: a @ a)
    return 2 * size**3 / (ms * 1e-3)


def time_shapes(torch, triton, wtraj, plan, device, checker, timer):
    """Time every shape and dtype beside its floors and torch.cdist; returns the table's rows."""
    flops = float32_rate(torch, device, timer)
    # one FMA is two flops; a pair-element is two instructions (subtraction, FMA)
    pair_rate = flops / 4
    total_memory = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else None
    out_of_memory = getattr(torch, "OutOfMemoryError", RuntimeError)
    rows = [f"float32 matmul rate: {flops / 1e12:.2f} TFLOP/s (TF32 off); pair-element rate "
            f"{pair_rate / 1e12:.2f} T/s", ""]
    rows.append("| op | N | D | dtype | wtraj ms | memory floor ms | compute floor ms | binds "
                "| % of binding floor | >= 50%? | torch.cdist ms | cdist max rel err | wtraj max rel err |")
    rows.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        for n, d in plan.timed_shapes:
            float32_bytes = 4 * n * d
            if total_memory is not None and float32_bytes * MEMORY_FACTOR > total_memory:
                rows.append(f"| pairwise | {n} | {d} | {dtype_name} | skipped: {MEMORY_FACTOR} x "
                            f"{float32_bytes / 2**30:.1f} GiB exceeds {total_memory / 2**30:.0f} GiB "
                            "|||||||||")
                continue
            X = walk(torch, n, d, TIMED_STEP, dtype, device)
            rows += _time_one(torch, wtraj, X, dtype_name, pair_rate, checker, timer, plan, out_of_memory)
            del X
            if device == "cuda":
                torch.cuda.empty_cache()
    return rows


def _time_one(torch, wtraj, X, dtype_name, pair_rate, checker, timer, plan, out_of_memory):
    n, d = X.shape
    label = f"N={n}, D={d}, {dtype_name}"
    memory_ms = timer(lambda: X.sum(dtype=torch.float32))
    compute_ms = n * (n - 1) / 2 * d / pair_rate * 1e3
    binding_ms, binds = max((memory_ms, "memory"), (compute_ms, "compute"))
    rows_checked = sorted(set(np.linspace(0, n - 1, min(n, plan.truth_rows)).astype(int).tolist()))
    truth = truth_distances(torch, X, rows_checked)

    pairwise_ms = timer(lambda: wtraj.pairwise(X, backend="triton"))
    distances = wtraj.pairwise(X, backend="triton")
    error = checker.compare(f"timed pairwise euclidean, {label}", distances[rows_checked], truth, "euclidean")
    Xf = X if X.dtype == torch.float32 else X.float()
    try:
        cdist_ms = timer(lambda: torch.cdist(Xf, Xf))
        theirs = torch.cdist(Xf, Xf)[rows_checked].double().cpu().numpy()
        cdist = f"{cdist_ms:.3g} | {max_error(theirs, truth, 'euclidean'):.1e}"
    except out_of_memory:
        cdist = "out of memory | "
    fraction = binding_ms / pairwise_ms
    rows = [f"| pairwise euclidean | {n} | {d} | {dtype_name} | {pairwise_ms:.3g} | {memory_ms:.3g} | "
            f"{compute_ms:.3g} | {binds} | {100 * fraction:.0f}% | "
            f"{'yes' if fraction >= TARGET_FRACTION else 'no'} | {cdist} | {error:.1e} |"]

    steps_ms = timer(lambda: wtraj.step_norms(X, backend="triton"))
    step_truth = truth_steps(torch, X)
    error = checker.compare(f"timed step_norms, {label}", wtraj.step_norms(X, backend="triton"),
                            step_truth, "step_norm")
    fraction = memory_ms / steps_ms
    rows.append(f"| step_norms | {n} | {d} | {dtype_name} | {steps_ms:.3g} | {memory_ms:.3g} | "
                f"| memory | {100 * fraction:.0f}% | {'yes' if fraction >= TARGET_FRACTION else 'no'} "
                f"| | | {error:.1e} |")

    stats_ms = timer(lambda: wtraj.trajectory_stats(X, backend="triton"))
    stats = wtraj.trajectory_stats(X, backend="triton")
    error = max(
        checker.compare(f"timed trajectory_stats distances, {label}", stats.distances[rows_checked], truth,
                        "euclidean"),
        checker.compare(f"timed trajectory_stats step_norms, {label}", stats.step_norms, step_truth,
                        "step_norm"),
    )
    fraction = binding_ms / stats_ms
    parts = stats_ms / (pairwise_ms + steps_ms)
    rows.append(f"| trajectory_stats ({parts:.2f}x pairwise + step_norms) | {n} | {d} | {dtype_name} | "
                f"{stats_ms:.3g} | {memory_ms:.3g} | {compute_ms:.3g} | {binds} | {100 * fraction:.0f}% | "
                f"{'yes' if fraction >= TARGET_FRACTION else 'no'} | | | {error:.1e} |")
    return rows


def describe(torch, triton, device) -> list[str]:
    """The card, the versions and the date, as markdown lines."""
    if device == "cuda":
        card = torch.cuda.get_device_name(0)
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30,
            ).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            driver = "unknown (nvidia-smi did not answer)"
    else:
        card = f"CPU ({platform.processor() or platform.machine()}), Triton interpreter: times mean nothing"
        driver = "none"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"### GPU check: {card}, {date}",
        "",
        f"Driver {driver}, CUDA {torch.version.cuda}, torch {torch.__version__}, "
        f"triton {triton.__version__}, "
        f"Python {platform.python_version()}, wtraj commit {commit}. Command: `python bench/gpu_check.py "
        f"{' '.join(sys.argv[1:])}`.",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: Triton's interpreter on tiny sizes, to test this script without a GPU")
    parser.add_argument("--inject-error", action="store_true",
                        help=f"perturb the first checked result by {INJECTED_ERROR:g}: the run must fail")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        # the interpreter must be chosen before triton is first imported
        os.environ["TRITON_INTERPRET"] = "1"
    import torch
    import triton

    import wtraj

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py needs a CUDA GPU (or --device cpu to run under Triton's interpreter).",
              file=sys.stderr)
        return 2
    plan = PLANS["interpreted" if args.device == "cpu" else "quick" if args.quick else "full"]
    checker = Checker(inject_error=args.inject_error)
    timer = make_timer(torch, triton, args.device)
    started = time.perf_counter()
    lines = describe(torch, triton, args.device)
    check_correctness(torch, wtraj, plan, args.device, checker)
    timing = time_shapes(torch, triton, wtraj, plan, args.device, checker, timer)
    lines += ["", "#### Speed (every result also checked against the float64 truth)", "", *timing]
    lines += ["", "#### Accuracy against float64", "", "| check | max rel. error | limit | status |",
              "|---|---|---|---|", *checker.rows]
    lines += ["", f"{checker.failures} accuracy failures; wall time {time.perf_counter() - started:.0f} s."]
    print("\n".join(lines))
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
