"""The main job end to end: ``wtraj analyze FOLDER --out REPORT`` on a cold folder, against the read floor.

Writes ``N`` safetensors checkpoints of ``P`` parameters (float32,
transformer-like shapes, as ``bench_checkpoints.py``) and, with the page
cache dropped before every run (needs root; said when it could not be):

- the read floor: the fastest of ``cat``, ``dd bs=16M``, a parallel read and
  a parallel read after asking for every file ahead (``bench_checkpoints.py``'s
  workers), measured in rounds between the runs below;
- ``wtraj analyze`` in a fresh process, timed from launch to exit: start-up
  (interpreter, imports, compiled kernels loaded from Numba's disk cache),
  discovery, the streamed pass, the analysis, the report with its figures,
  and the exit; with ``WTRAJ_BENCH_BEFORE=TREE`` the same command from
  another source tree (e.g. ``git archive`` of an older commit) in the same
  rounds, so that before and after share the machine's load;
- with ``WTRAJ_BENCH_COLD=folder``, only the checkpoint files are evicted
  from the page cache (``posix_fadvise(DONTNEED)``), not Python's, Numba's
  or the kernels' cached files: a folder of new checkpoints analysed from an
  environment in use, against the default ``all`` (the whole page cache
  dropped, the slowest start-up there is);
- where the time goes: the same command (cold again) with wall-clock
  timestamps at the phase boundaries, taken by wrapping the functions that
  start and end each phase (no profiler: it would slow down the Python parts
  most). The best of ``WTRAJ_BENCH_TIMELINES`` (default 2) runs is shown.

Every figure is the minimum over ``WTRAJ_BENCH_ROUNDS`` (default 3) rounds.
Run ``python bench/bench_analyze.py``; ``WTRAJ_BENCH_PARAMS`` (default
63,000,000), ``WTRAJ_BENCH_N`` (16) and ``WTRAJ_BENCH_DIR`` set the sizes and
the place; ``WTRAJ_BENCH_FOLDER`` reuses a folder of checkpoints instead
(left in place). A folder written here is removed afterwards.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_checkpoints import READ_FLOOR_KINDS, drop_caches, run_worker, write_checkpoints  # noqa: E402

HERE = str(Path(__file__).resolve().parent.parent)

# `wtraj analyze` with a timestamp (seconds since the launch, T0) at each phase boundary, printed at exit
TIMELINE = r"""
import os, sys, threading, time
T0 = float(os.environ["WTRAJ_BENCH_T0"])
marks = []
def mark(what):
    marks.append((time.time() - T0, what))
def wrap(owner, name, before, after):
    real = getattr(owner, name)
    def wrapped(*args, **kwargs):
        mark(before)
        try:
            return real(*args, **kwargs)
        finally:
            mark(after)
    setattr(owner, name, wrapped)
mark("interpreter started")
import wtraj.cli
mark("wtraj.cli imported")
import wtraj, wtraj._pass, wtraj.report.build, wtraj.report.figure_pool
wrap(wtraj, "open", "open: headers read", "open: done")
wrap(wtraj, "trajectory_stats", "pass: begins", "pass: ends")
wrap(wtraj._pass, "_loaded_kernels", "pass: kernels load (thread)", "pass: kernels loaded")
first = []
real_add = wtraj._pass._BlockOps.add
def add(*args, **kwargs):
    # the pass's own first call (the thread loading the kernels makes one too)
    if not first and threading.current_thread() is threading.main_thread():
        first.append(mark("pass: first block's kernels"))
    return real_add(*args, **kwargs)
wtraj._pass._BlockOps.add = add
wrap(wtraj.report.build, "write_report", "report: begins", "report: written")
wrap(wtraj.report.figure_pool.FigurePool, "start", "figure workers: start", "figure workers: started")
wrap(wtraj.report.figure_pool.FigurePool, "collect", "report: waits for the workers", "report: figures in")
code = wtraj.cli.main(sys.argv[1:])
mark("command done")
sys.stdout.flush()
print("\n".join(f"{t:.3f} {what}" for t, what in marks), file=sys.stderr)
sys.stderr.flush()
os._exit(code)
"""


def analyze_once(tree: str, folder: Path, out: Path, timeline: bool = False) -> tuple[float, float, str]:
    """One ``wtraj analyze`` from ``tree``, a fresh process: wall and CPU seconds (workers in), marks."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=tree)
    arguments = ["analyze", str(folder), "--out", str(out)]
    command = [sys.executable, *(["-c", TIMELINE] if timeline else ["-m", "wtraj"]), *arguments]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env["WTRAJ_BENCH_T0"] = repr(time.time())
    done = subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tree
    )
    wall = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime, done.stderr


def evict_folder(folder: Path) -> bool:
    """Drop the checkpoint files' pages from the page cache, leaving every other file cached."""
    os.sync()
    for path in folder.glob("*.safetensors"):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)
    return True


def main() -> None:
    n_params = int(os.environ.get("WTRAJ_BENCH_PARAMS", 63_000_000))
    n = int(os.environ.get("WTRAJ_BENCH_N", 16))
    rounds = int(os.environ.get("WTRAJ_BENCH_ROUNDS", 3))
    n_timelines = int(os.environ.get("WTRAJ_BENCH_TIMELINES", 2))
    cold_mode = os.environ.get("WTRAJ_BENCH_COLD", "all")
    if cold_mode not in ("all", "folder"):
        raise SystemExit(f"WTRAJ_BENCH_COLD must be 'all' or 'folder', not {cold_mode!r}")
    trees = {"analyze": HERE}
    if os.environ.get("WTRAJ_BENCH_BEFORE"):
        trees = {"before": os.environ["WTRAJ_BENCH_BEFORE"], **trees}
    root = Path(tempfile.mkdtemp(prefix="wtraj-analyze-", dir=os.environ.get("WTRAJ_BENCH_DIR")))
    out = root / "report"
    given = os.environ.get("WTRAJ_BENCH_FOLDER")
    folder = Path(given) if given else root / "float32"
    try:
        if not given:
            folder.mkdir()
            write_checkpoints(folder, n, n_params, "float32")
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        print(
            f"# {platform.node()}: {os.cpu_count()} cores, {size / 1e9:.2f} GB in {folder}, trees {trees}, "
            f"cold: {cold_mode}"
        )

        def make_cold() -> bool:
            return drop_caches() if cold_mode == "all" else evict_folder(folder)

        # compile (or load from the disk cache) once, so every timed run finds the cache warm
        for tree in trees.values():
            analyze_once(tree, folder, out)
        times: dict[str, list[float]] = {kind: [] for kind in (*READ_FLOOR_KINDS, *trees)}
        cpu: dict[str, list[float]] = {kind: [] for kind in trees}
        cold = True
        for _ in range(rounds):
            for kind in times:
                cold = make_cold() and cold
                if kind in trees:
                    seconds, used, _ = analyze_once(trees[kind], folder, out)
                    cpu[kind].append(used)
                else:
                    seconds = run_worker(kind, folder)["seconds"]
                times[kind].append(seconds)
                load = os.getloadavg()[0]
                print(
                    f"{kind:8s} {seconds:6.2f} s {size / seconds / 1e9:6.3f} GB/s  load {load:.1f}",
                    flush=True,
                )
        floor = min(min(times[kind]) for kind in READ_FLOOR_KINDS)
        kinds = ", ".join(READ_FLOOR_KINDS)
        print(f"\nread floor {floor:.2f} s ({size / floor / 1e9:.2f} GB/s, the fastest of {kinds})")
        for kind in trees:
            best = min(times[kind])
            print(
                f"{kind}: wtraj analyze {best:.2f} s = {floor / best:.0%} of the read floor's rate "
                f"(runs: {', '.join(f'{s:.2f}' for s in times[kind])} s; CPU, workers included: "
                f"{', '.join(f'{s:.2f}' for s in cpu[kind])} s)"
            )
        print(f"page cache dropped ({cold_mode}): {cold}\n")
        timelines = []
        for _ in range(n_timelines):
            make_cold()
            timelines.append(analyze_once(HERE, folder, out, timeline=True))
        wall, _, marks = min(timelines)
        print(
            f"| where the time goes (cold, {wall:.2f} s launch to exit, best of {n_timelines}) "
            "| s since launch |"
        )
        print("|---|---|")
        for line in marks.strip().splitlines():
            seconds, what = line.split(" ", 1)
            print(f"| {what} | {float(seconds):.2f} |")
        print(f"| process ended | {wall:.2f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
