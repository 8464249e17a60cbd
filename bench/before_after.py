"""The Numba kernels of an earlier commit against the working tree's, interleaved in one process.

On a shared machine two runs minutes apart are not comparable; this runs the
old and new ``pairwise_block`` / ``steps_block`` side by side through the
public functions (``wtraj.pairwise``, ``step_norms``, ``curvature``,
``trajectory_stats``), each call's best of several, beside the memory floor.
The old kernel modules are read from ``git show COMMIT:kernels/numba/...``
and stand in for the backend's for the "before" calls; the old pass called
``steps_block`` after ``pairwise_block`` on each block, which the stand-in
does too. CPU time is the calling thread's with one thread, the process's
with more (it excludes time the machine gave to other jobs).

    python bench/before_after.py --commit 68612ab [--n 32] [--d 4000000] [--threads 2] [--repeats 8]
"""

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from conftest import random_walk
from floors import _simd_sum

import wtraj
import wtraj.kernels.numba as numba_backend

ROOT = Path(__file__).resolve().parent.parent


def _old_module(commit, name, folder):
    show = ["git", "show", f"{commit}:kernels/numba/{name}.py"]
    source = subprocess.run(show, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    path = Path(folder) / f"old_{name}.py"
    # compiled afresh: the on-disk cache of the old functions would be keyed like the new ones'
    path.write_text(source.replace("cache=True", "cache=False"))
    spec = importlib.util.spec_from_file_location(f"old_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_backend(commit, folder):
    old_pairwise, old_steps = _old_module(commit, "pairwise", folder), _old_module(commit, "steps", folder)

    def steps_block(x, start, stop, out, sums=None):
        old_steps.steps_block(x, start, stop, out)

    def pairwise_block(x, x_start, x_stop, y, y_start, y_stop, op, out, scales=None, steps=None,
                       path_sums=None):
        old_pairwise.pairwise_block(x, x_start, x_stop, y, y_start, y_stop, op, out, scales)
        if steps is not None:
            old_steps.steps_block(x, x_start, x_stop, steps)

    return pairwise_block, steps_block


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", required=True, help="the commit whose kernels are 'before'")
    parser.add_argument("--n", type=int, default=32, help="checkpoints (N)")
    parser.add_argument("--d", type=int, default=4_000_000, help="parameters per checkpoint (D)")
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeats", type=int, default=8, help="rounds; each call's best is kept")
    args = parser.parse_args(argv)
    X = random_walk(args.n, args.d)
    numba.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.process_time
    new = numba_backend.pairwise_block, numba_backend.steps_block
    with tempfile.TemporaryDirectory() as folder:
        old = _old_backend(args.commit, folder)

        def call(fn, kernels):
            def run():
                numba_backend.pairwise_block, numba_backend.steps_block = kernels
                try:
                    fn(X, backend="numba")
                finally:
                    numba_backend.pairwise_block, numba_backend.steps_block = new

            return run

        calls = {"memory floor": lambda: _simd_sum(X.reshape(-1))}
        for name in ("pairwise", "step_norms", "curvature", "trajectory_stats"):
            for when, kernels in (("before", old), ("after", new)):
                calls[f"{name} {when}"] = call(getattr(wtraj, name), kernels)
        best = {name: (np.inf, np.inf) for name in calls}
        for fn in calls.values():
            fn()
        for _ in range(args.repeats):
            for name, fn in calls.items():
                wall, cpu = time.perf_counter(), clock()
                fn()
                cpu, wall = clock() - cpu, time.perf_counter() - wall
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    floor_wall, floor_cpu = best["memory floor"]
    print(f"N = {args.n}, D = {args.d:,}, float32, numba threads {args.threads}, best of {args.repeats}, "
          f"before = {args.commit}")
    print()
    print("| call | wall (ms) | vs floor | CPU (ms) | vs floor |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu) in best.items():
        print(f"| {name} | {wall * 1e3:.1f} | {wall / floor_wall:.2f}x "
              f"| {cpu * 1e3:.1f} | {cpu / floor_cpu:.2f}x |")
    for when in ("before", "after"):
        parts = [best[f"{name} {when}"] for name in ("pairwise", "step_norms")]
        stats = best[f"trajectory_stats {when}"]
        wall_ratio = stats[0] / (parts[0][0] + parts[1][0])
        cpu_ratio = stats[1] / (parts[0][1] + parts[1][1])
        print(f"trajectory_stats / (pairwise + step_norms), {when}: "
              f"wall {wall_ratio:.2f}, CPU {cpu_ratio:.2f}")


if __name__ == "__main__":
    main()
