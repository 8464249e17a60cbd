"""Figures drawn by worker processes: the same bytes, every figure delivered, no process left behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("safetensors", reason="the sample runs are saved as safetensors")

import wtraj  # noqa: E402
from wtraj.report.build import _png, write_report  # noqa: E402
from wtraj.report.figure_pool import FigurePool  # noqa: E402
from wtraj.report.figures import FIGURES  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_RUNS = ["run_seed0", "run_seed1", "run_shift"]


@pytest.fixture(scope="module")
def analysis():
    return wtraj.analyze([str(SAMPLES / name) for name in SAMPLE_RUNS], progress=False)


def _files(folder: Path) -> dict[str, bytes]:
    """The report's files, but for when it was made (the one thing that differs between two runs)."""
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    for name in ("metrics.json", ".wtraj-report"):
        fields = json.loads(files[name])
        fields.pop("created")
        files[name] = json.dumps(fields).encode()
    files["report.html"] = re.sub(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC", b"", files["report.html"])
    return files


def _ended(process: subprocess.Popen) -> bool:
    return process.poll() is not None


def test_workers_draw_the_bytes_this_process_draws(analysis):
    with FigurePool() as pool:
        pool.start(2)
        pool.send(analysis, list(FIGURES))
        drawn = pool.collect()
    assert sorted(drawn) == sorted(FIGURES)
    for name in FIGURES:
        assert drawn[name] == _png(analysis, name), name


def test_a_report_drawn_by_workers_equals_one_drawn_here(analysis, tmp_path):
    write_report(analysis, tmp_path / "here", inputs=analysis.inputs)
    with FigurePool() as pool:
        pool.start(2)
        write_report(analysis, tmp_path / "workers", inputs=analysis.inputs, pool=pool)
    assert _files(tmp_path / "workers") == _files(tmp_path / "here")


def test_figures_of_a_dead_worker_are_drawn_here(analysis, tmp_path):
    write_report(analysis, tmp_path / "here", inputs=analysis.inputs)
    with FigurePool() as pool:
        pool.start(2)
        dead = pool._workers[0].process
        dead.kill()
        dead.wait()
        write_report(analysis, tmp_path / "workers", inputs=analysis.inputs, pool=pool)
    assert _files(tmp_path / "workers") == _files(tmp_path / "here")


def test_a_pool_never_started_draws_nothing(analysis):
    with FigurePool() as pool:
        pool.send(analysis, list(FIGURES))
        assert pool.collect() == {}


def test_workers_are_stopped_when_the_command_fails(analysis):
    with pytest.raises(RuntimeError, match="the analysis failed"):
        with FigurePool() as pool:
            pool.start(2)
            processes = [worker.process for worker in pool._workers]
            pool.send(analysis, list(FIGURES))
            raise RuntimeError("the analysis failed")
    assert all(_ended(p) for p in processes)


def test_workers_end_when_the_command_dies(tmp_path):
    # a command killed without cleanup (SIGKILL): its workers see their pipe close and end
    script = (
        "import os, sys; from wtraj.report.figure_pool import FigurePool\n"
        "pool = FigurePool(); pool.start(2)\n"
        "print(' '.join(str(w.process.pid) for w in pool._workers), flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    for pid in map(int, done.stdout.split()):
        status = Path(f"/proc/{pid}/status")
        if not status.parent.exists():
            continue
        for _ in range(300):
            if not status.exists() or "State:\tZ" in status.read_text():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            pytest.fail(f"worker {pid} outlived the command")


def test_analyze_starts_workers_for_long_passes_only(tmp_path, monkeypatch):
    from wtraj.cli import main
    from wtraj.report import figure_pool

    started = []
    real_start = FigurePool.start

    def recording_start(self, n_workers=None):
        started.append(n_workers)
        real_start(self, n_workers)

    monkeypatch.setattr(FigurePool, "start", recording_start)
    inputs = [str(SAMPLES / name) for name in SAMPLE_RUNS]
    assert main(["analyze", *inputs, "--out", str(tmp_path / "here"), "--no-progress"]) == 0
    assert started == []
    # as if the sample runs were large enough to hide the workers' start
    monkeypatch.setattr(figure_pool, "MIN_PASS_BYTES", 0)
    assert main(["analyze", *inputs, "--out", str(tmp_path / "workers"), "--no-progress"]) == 0
    assert started == [None]
    assert _files(tmp_path / "workers") == _files(tmp_path / "here")


def test_workers_that_cannot_start_leave_the_figures_to_the_command(analysis, tmp_path, monkeypatch):
    from wtraj.report import figure_pool

    def no_process(self):
        raise OSError(11, "Resource temporarily unavailable")

    write_report(analysis, tmp_path / "here", inputs=analysis.inputs)
    monkeypatch.setattr(figure_pool._Worker, "__init__", no_process)
    with FigurePool() as pool:
        pool.start(2)
        write_report(analysis, tmp_path / "fallback", inputs=analysis.inputs, pool=pool)
    assert _files(tmp_path / "fallback") == _files(tmp_path / "here")
