"""The main job end to end: ``wtraj analyze FOLDER --out REPORT`` on a cold folder, against the read floor.

Writes ``N`` safetensors checkpoints of ``P`` parameters (float32,
transformer-like shapes, as ``bench_checkpoints.py``) and, with the page
cache dropped before every run (needs root; said when it could not be):

- the read floor: the fastest of ``cat``, ``dd bs=16M`` and a parallel read of
  the same files (``bench_checkpoints.py``'s workers), before and after;
- ``wtraj analyze`` in a fresh process, timed from launch to exit: start-up
  (interpreter, imports, compiled kernels loaded from Numba's disk cache),
  discovery, the streamed pass, the analysis and the report with its figures;
- where the time goes: the same command under ``cProfile`` (cold again),
  its wall time split into the phases below by the cumulative time of the
  functions that own them; the rest is the interpreter's start and exit.

Run ``python bench/bench_analyze.py``; ``WTRAJ_BENCH_PARAMS`` (default
63,000,000), ``WTRAJ_BENCH_N`` (16) and ``WTRAJ_BENCH_DIR`` set the sizes and
the place. The folder is removed afterwards.
"""

from __future__ import annotations

import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_checkpoints import READ_FLOOR_KINDS, drop_caches, run_worker, write_checkpoints  # noqa: E402

# phase -> the function whose cumulative time is that phase (file suffix, function name)
PHASES = {
    "imports (wtraj.cli and what it pulls in)": ("wtraj/cli.py", "<module>"),
    "discovery of the checkpoints": ("wtraj/pipeline.py", "_discovered"),
    "streamed pass (trajectory_stats: read + kernels)": ("wtraj/stats.py", "trajectory_stats"),
    "analysis (order, runs, shifts)": ("wtraj/pipeline.py", "_run"),
    "report (tables, figures, page)": ("wtraj/result.py", "save"),
}


def analyze_once(folder: Path, out: Path, profile: Path | None = None) -> float:
    """Wall seconds of one ``wtraj analyze`` in a fresh process, launch to exit."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "wtraj", "analyze", str(folder), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def phase_seconds(profile: Path) -> dict[str, float]:
    """Cumulative seconds of each phase's owner in a cProfile dump (the largest entry of each)."""
    stats = pstats.Stats(str(profile)).stats
    found = dict.fromkeys(PHASES, 0.0)
    for (filename, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
        for phase, (suffix, function) in PHASES.items():
            if name == function and filename.replace("\\", "/").endswith(suffix):
                found[phase] = max(found[phase], cumulative)
    return found


def main() -> None:
    n_params = int(os.environ.get("WTRAJ_BENCH_PARAMS", 63_000_000))
    n = int(os.environ.get("WTRAJ_BENCH_N", 16))
    root = Path(tempfile.mkdtemp(prefix="wtraj-analyze-", dir=os.environ.get("WTRAJ_BENCH_DIR")))
    folder, out, profile = root / "float32", root / "report", root / "analyze.prof"
    print(f"# {platform.node()}: {os.cpu_count()} cores, N={n} x P={n_params:,} float32, folder {root}")
    try:
        folder.mkdir()
        write_checkpoints(folder, n, n_params, "float32")
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        # compile (or load from the disk cache) once, so every timed run finds the cache warm
        analyze_once(folder, out)
        reads, runs, cold = [], [], True
        for kind in (*READ_FLOOR_KINDS, "analyze", "analyze", *READ_FLOOR_KINDS):
            cold = drop_caches() and cold
            seconds = analyze_once(folder, out) if kind == "analyze" else run_worker(kind, folder)["seconds"]
            (runs if kind == "analyze" else reads).append(seconds)
            print(f"{kind:8s} {seconds:6.2f} s {size / seconds / 1e9:6.3f} GB/s", flush=True)
        cold = drop_caches() and cold
        profiled = analyze_once(folder, out, profile)
        floor = min(reads)
        best = min(runs)
        print(
            f"\n{size / 1e9:.2f} GB; read floor {floor:.2f} s ({size / floor / 1e9:.2f} GB/s, the fastest of "
            f"{', '.join(READ_FLOOR_KINDS)}); wtraj analyze {best:.2f} s = {floor / best:.0%} of the read "
            f"floor's rate (runs: {', '.join(f'{s:.2f}' for s in runs)} s); page cache dropped: {cold}\n"
        )
        print(f"| phase (cProfile, cold, {profiled:.2f} s wall, profiler overhead in) | s | share |")
        print("|---|---|---|")
        phases = phase_seconds(profile)
        for phase, seconds in phases.items():
            print(f"| {phase} | {seconds:.2f} | {seconds / profiled:.0%} |")
        rest = profiled - sum(phases.values())
        print(f"| interpreter start and exit, and the rest | {rest:.2f} | {rest / profiled:.0%} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
