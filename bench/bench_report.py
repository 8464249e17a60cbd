"""Start-up costs of the main job: the report of ``wtraj analyze`` and the first call in a new process.

- report: ``Analysis.save`` on ``N`` small checkpoints (the 97 transformer-like
  tensors of ``bench_analyze.py``, ``P`` parameters in all: its cost depends
  on the checkpoints, runs and layers, not on the parameter count), in a fresh
  process: the first save (which imports matplotlib) and warm saves, then the
  warm save split into its parts (building the figures, the layout pass,
  rendering, PNG encoding), and ``python -m wtraj analyze`` from launch to exit;
- first call: ``wtraj.pairwise``, ``step_norms`` and ``trajectory_stats`` on a
  (16, 1,000,000) float32 array in a fresh process, Numba's disk cache warm
  (one untimed run first): the imports (numpy, wtraj) and the first call,
  timed inside, and the process from launch to exit (which also makes the
  array, about 0.05 s).

Every figure is the best of ``WTRAJ_BENCH_REPEATS`` (default 5) runs. Run
``python bench/bench_report.py``; ``WTRAJ_BENCH_N`` (16) and
``WTRAJ_BENCH_PARAMS`` (20,000) set the folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_checkpoints import write_checkpoints  # noqa: E402

FIRST_CALL = """
import time
start = time.perf_counter()
import sys
import numpy as np
import wtraj
imported = time.perf_counter()
X = np.random.default_rng(0).random((16, 1_000_000), dtype=np.float32)
data = time.perf_counter()
getattr(wtraj, sys.argv[1])(X)
print(imported - start, time.perf_counter() - data)
"""

SAVE = """
import io, shutil, sys, time
import numpy as np
import wtraj
from PIL import Image
folder, out, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
analysis = wtraj.analyze([folder])

def save():
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    analysis.save(out)
    return time.perf_counter() - start

first = save()
best = {"save, warm": min(save() for _ in range(repeats))}
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from wtraj.report import plots
from wtraj.report.figures import report_figures
for _ in range(repeats):
    parts = dict.fromkeys(("building the figures", "layout pass", "rendering (Agg)", "PNG encoding"), 0.0)
    start = time.perf_counter()
    figures = report_figures(analysis)
    parts["building the figures"] = time.perf_counter() - start
    for figure, _, _ in figures.values():
        with rc_context(plots.PLAIN_TEXT):
            figure.set_dpi(plots.DPI)
            canvas = FigureCanvasAgg(figure)
            start = time.perf_counter()
            figure.get_layout_engine().execute(figure)
            parts["layout pass"] += time.perf_counter() - start
            with rc_context(plots.NO_AUTOLAYOUT):
                figure.set_layout_engine(None)
            start = time.perf_counter()
            canvas.draw()
            parts["rendering (Agg)"] += time.perf_counter() - start
            image = Image.fromarray(np.asarray(canvas.buffer_rgba()))
            start = time.perf_counter()
            image.save(io.BytesIO(), format="png", compress_level=plots.PNG_COMPRESS_LEVEL)
            parts["PNG encoding"] += time.perf_counter() - start
    for name, seconds in parts.items():
        best[name] = min(best.get(name, seconds), seconds)
print(f"save, first in the process (imports matplotlib) {first:.3f}")
for name, seconds in best.items():
    print(f"{name} {seconds:.3f}")
"""


def best_wall(command: list[str], repeats: int) -> tuple[float, str]:
    """Best launch-to-exit seconds of ``command`` and the output of that run."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        runs.append((time.perf_counter() - start, done.stdout))
    return min(runs)


def main() -> None:
    repeats = int(os.environ.get("WTRAJ_BENCH_REPEATS", 5))
    n = int(os.environ.get("WTRAJ_BENCH_N", 16))
    n_params = int(os.environ.get("WTRAJ_BENCH_PARAMS", 20_000))
    with tempfile.TemporaryDirectory(prefix="wtraj-report-") as root:
        folder, out = Path(root) / "checkpoints", Path(root) / "report"
        folder.mkdir()
        write_checkpoints(folder, n, n_params, "float32")
        print(f"# report of {n} checkpoints x {n_params:,} float32 parameters, best of {repeats}")
        done = subprocess.run(
            [sys.executable, "-c", SAVE, str(folder), str(out), str(repeats)],
            check=True,
            capture_output=True,
            text=True,
        )
        print(done.stdout, end="")
        analyze = [sys.executable, "-m", "wtraj", "analyze", str(folder), "--out", str(out), "--overwrite"]
        subprocess.run(analyze, check=True, capture_output=True)
        seconds, _ = best_wall(analyze, repeats)
        print(f"python -m wtraj analyze, launch to exit {seconds:.3f}")
    print("\n# first call on (16, 1,000,000) float32, Numba disk cache warm")
    print("| function | imports, s | first call, s | launch to exit, s |")
    print("|---|---|---|---|")
    for name in ("pairwise", "step_norms", "trajectory_stats"):
        command = [sys.executable, "-c", FIRST_CALL, name]
        subprocess.run(command, check=True, capture_output=True)
        seconds, stdout = best_wall(command, repeats)
        imports, call = (float(v) for v in stdout.split())
        print(f"| {name} | {imports:.3f} | {call:.3f} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
