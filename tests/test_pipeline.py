"""``wtraj.analyze``: the job behind ``wtraj analyze`` and its result, on the shipped sample runs."""

from __future__ import annotations

import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="the sample runs are saved as safetensors")

import wtraj  # noqa: E402
from wtraj.cli import main  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_RUNS = ["run_seed0", "run_seed0_sibling", "run_seed1", "run_shift"]


@pytest.fixture(scope="module")
def analysis():
    """The four sample runs; run_seed0 and run_seed0_sibling start from the same saved initialisation."""
    return wtraj.analyze([str(SAMPLES / name) for name in SAMPLE_RUNS], progress=False)


def test_runs_follow_the_folders_and_the_shared_start_is_marked(analysis):
    assert len(analysis.runs) == 4
    folders = [run.inputs for run in analysis.runs]
    assert sorted(len(f) for f in folders) == [1, 1, 1, 1], folders
    for run in analysis.runs:
        epochs = [int(name.split("epoch_")[1][:3]) for name in run.checkpoints]
        assert epochs == list(range(21)), run
        # the order above is right; its confidence is calibrated (bench/RESULTS.md)
        assert 0.5 <= run.direction_confidence <= 1.0
        assert run.checkpoints == [analysis.names[r] for r in run.order]
    # both folders keep their copy of the initialisation, and the two runs say they share it
    by_folder = {Path(run.inputs[0]).name: run for run in analysis.runs}
    seed0, sibling = by_folder["run_seed0"], by_folder["run_seed0_sibling"]
    assert seed0.shared == [
        {"position": 0, "checkpoint": "run_seed0/epoch_000.safetensors", "with_runs": [sibling.label]}
    ]
    assert [s["with_runs"] for s in sibling.shared] == [[seed0.label]]
    assert by_folder["run_seed1"].shared == [] == by_folder["run_shift"].shared
    labels = sorted([seed0.label, sibling.label])
    assert f"runs {labels[0]} and {labels[1]} start from the same checkpoint" in analysis.notes()[0]
    assert analysis.folder_disagreement == {"split": {}, "merged": {}}
    # the shift of run_shift after epoch 10
    events = by_folder["run_shift"].shifts
    assert [(e["kind"], e["position"]) for e in events if e["kind"] == "shift"] == [("shift", 11)]


def test_a_folder_holding_two_runs_is_said_to_be_split(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for run in ("run_seed0", "run_seed1"):
        for f in sorted((SAMPLES / run).glob("*.safetensors"))[:8]:
            shutil.copy(f, folder / f"{run}_{f.name}")
    result = wtraj.analyze(folder, progress=False)
    assert len(result.runs) == 2
    assert result.folder_disagreement == {"split": {str(folder): [0, 1]}, "merged": {}}
    assert (
        f"{folder} holds checkpoints of 2 recovered runs (runs 0 and 1: 8 + 8 checkpoints)"
        in result.notes()[0]
    )
    # and the command line says so too
    status = main(["analyze", str(folder), "--out", str(tmp_path / "report"), "--no-progress"])
    assert status == 0
    metrics = (tmp_path / "report" / "metrics.json").read_text()
    assert "holds checkpoints of 2 recovered runs" in metrics
    page = (tmp_path / "report" / "report.html").read_text()
    assert "holds checkpoints of 2 recovered runs" in page


def test_two_folders_joined_into_one_run_are_said_to_be_merged(tmp_path):
    # one run's checkpoints spread over two folders
    files = sorted((SAMPLES / "run_seed1").glob("*.safetensors"))
    for part, chunk in (("first", files[:10]), ("second", files[10:])):
        (tmp_path / part).mkdir()
        for f in chunk:
            shutil.copy(f, tmp_path / part / f.name)
    result = wtraj.analyze([tmp_path / "first", tmp_path / "second"], n_runs=1, progress=False)
    assert result.folder_disagreement == {
        "split": {},
        "merged": {0: [str(tmp_path / "first"), str(tmp_path / "second")]},
    }
    assert "run 0 joins checkpoints of 2 input folders" in result.notes()[0]
    given = wtraj.analyze([tmp_path / "first", tmp_path / "second"], runs_from="inputs", progress=False)
    assert given.notes() == [] and len(given.runs) == 2


def test_save_writes_the_folder_of_the_command_line(analysis, tmp_path):
    out = analysis.save(tmp_path / "report")
    assert out == tmp_path / "report"
    status = main(
        ["analyze", *[str(SAMPLES / n) for n in SAMPLE_RUNS], "--out", str(tmp_path / "cli"), "--no-progress"]
    )
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "cli").iterdir())
    for name in ("steps.csv", "layers.csv"):
        assert (out / name).read_text() == (tmp_path / "cli" / name).read_text()
    np.testing.assert_array_equal(np.load(out / "distances.npy"), np.load(tmp_path / "cli" / "distances.npy"))
    with pytest.raises(FileExistsError, match="already exists"):
        analysis.save(out)
    # an unchanged wtraj report is replaced; one holding a file wtraj did not write is not
    analysis.save(out, overwrite=True)
    assert (out / "report.html").exists() and (out / ".wtraj-report").exists()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not write"):
        analysis.save(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("kind", ["steps", "layers", "runs", "events"])
def test_dataframes_hold_what_the_csv_files_hold(analysis, kind, tmp_path):
    pd = pytest.importorskip("pandas", reason="to_dataframe needs pandas")
    frame = analysis.to_dataframe(kind)
    assert isinstance(frame, pd.DataFrame)
    if kind in ("steps", "layers"):
        out = analysis.save(tmp_path / "report")
        rows = list(csv.DictReader(open(out / f"{kind}.csv")))
        assert list(frame.columns) == list(rows[0])
        assert len(frame) == len(rows)
        column = "step_norm"
        from_csv = np.array([float(r[column]) if r[column] else math.nan for r in rows])
        np.testing.assert_array_equal(frame[column].to_numpy(dtype=float), from_csv)
    if kind == "steps":
        assert len(frame) == 84
        assert "turning_angle_deg" in frame.columns
        run0 = analysis.runs[0]
        angles = frame[frame["run"] == run0.label]["turning_angle_deg"].to_numpy()[1:-1]
        np.testing.assert_allclose(np.radians(angles), run0.turning_angles, rtol=1e-12)
    if kind == "runs":
        assert list(frame["run"]) == [run.label for run in analysis.runs]
        assert frame["n_checkpoints"].sum() == 84
    if kind == "events":
        assert list(frame["kind"]).count("shift") == 1


def test_dataframe_without_pandas_names_the_extra(analysis, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"wtraj\[pandas\]"):
        analysis.to_dataframe("runs")


def test_unknown_kinds_are_refused(analysis):
    with pytest.raises(ValueError, match="kind='curves': choose one of 'steps', 'layers', 'runs', 'events'"):
        analysis.to_dataframe("curves")
    with pytest.raises(ValueError, match="kind='heatmap': choose one of 'steps', 'distances'"):
        analysis.plot("heatmap")


@pytest.mark.parametrize("kind", ["steps", "distances", "embedding", "layers"])
def test_plots_are_matplotlib_figures(analysis, kind):
    from matplotlib.figure import Figure

    figure = analysis.plot(kind)
    assert isinstance(figure, Figure) and figure.axes
    labels = " ".join(ax.get_xlabel() + ax.get_ylabel() for ax in figure.axes)
    if kind == "steps":
        assert "(degrees)" in labels and "(L2)" in labels


def test_reprs_are_compact(analysis):
    text = repr(analysis)
    assert text.startswith("<wtraj Analysis: 84 checkpoints x 2,410 parameters, 4 run(s)")
    assert len(text.splitlines()) == 1 + 4 + len(analysis.notes()) and len(text) < 2000
    page = analysis._repr_html_()
    assert page.count("<img ") == 1 and page.count("<table>") == 1
    assert "start from the same checkpoint" in page
    # a thumbnail, not the report's full-size figure
    assert len(page) < 150_000


def test_bad_options_are_refused_before_reading():
    with pytest.raises(ValueError, match="runs_from='folders': choose one of recovered, inputs"):
        wtraj.analyze(SAMPLES / "run_seed0", runs_from="folders")
    with pytest.raises(ValueError, match="n_runs must be a positive number of runs; got 0"):
        wtraj.analyze(SAMPLES / "run_seed0", n_runs=0)
    with pytest.raises(FileNotFoundError):
        wtraj.analyze(SAMPLES / "no_such_run")
