"""The ``wtraj`` command line, run on real (tiny) training runs saved as safetensors."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the sample runs are trained with torch")
pytest.importorskip("safetensors", reason="the sample runs are saved as safetensors")

from conftest import TOLERANCE  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from truth import pairwise_truth  # noqa: E402

import wtraj  # noqa: E402
from wtraj import toy  # noqa: E402
from wtraj.cli import default_samples, main  # noqa: E402

N_CHECKPOINTS = 10
SHIFT_AT = 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Three runs from different initialisations; run "seed1" has a data shift."""
    root = tmp_path_factory.mktemp("runs")
    toy.save_run(toy.train_run(init_seed=0, data_seed=0, n_checkpoints=N_CHECKPOINTS), root / "seed0")
    toy.save_run(
        toy.train_run(init_seed=1, data_seed=1, n_checkpoints=N_CHECKPOINTS, shift_at=SHIFT_AT),
        root / "seed1",
    )
    toy.save_run(toy.train_run(init_seed=2, data_seed=2, n_checkpoints=N_CHECKPOINTS), root / "seed2")
    return root


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    """``wtraj analyze runs/seed*/ --out report --json --runs-from inputs``, once.

    Returns (exit status, stdout, folder). The grouping into runs is given, so
    that these tests check the command; the recovered grouping is checked below.
    """
    out = tmp_path_factory.mktemp("analyze") / "report"
    paths = [str(runs / f"seed{i}") for i in range(3)]
    capture = _Capture()
    with capture:
        status = main(
            ["analyze", *paths, "--out", str(out), "--json", "--no-progress", "--runs-from", "inputs"]
        )
    return status, capture.out, out


class _Capture:
    """Capture stdout and stderr of an in-process ``main`` call (module-scoped fixtures
    cannot use capsys)."""

    def __enter__(self):
        import io

        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        return self

    def __exit__(self, *exc):
        self.out, self.err = sys.stdout.getvalue(), sys.stderr.getvalue()
        sys.stdout, sys.stderr = self._saved


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# analyze


def test_analyze_writes_every_output(report, runs):
    status, out, folder = report
    assert status == 0
    payload = json.loads(out)
    assert payload["report"] == str(folder / "report.html")
    names = {p.name for p in folder.iterdir()}
    written = {
        "metrics.json", "steps.csv", "layers.csv", "distances.npy", "report.html",
        "steps.png", "distances.png", "embedding_2d.png", "embedding_3d.png", "layers.png",
    }  # fmt: skip
    assert names == written | {".wtraj-report"}
    # the marker that lets --overwrite replace this folder, and only it
    marker = json.loads((folder / ".wtraj-report").read_text())
    assert marker["written_by"] == "wtraj" and marker["wtraj_version"] == wtraj.__version__
    assert set(marker["files"]) == written and marker["created"]
    # built aside and renamed: no temporary folder left next to it
    assert [p.name for p in folder.parent.iterdir()] == ["report"]


def test_analyze_metrics_are_right(report, runs):
    _, _, folder = report
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["schema"] == "wtraj.analyze" and metrics["schema_version"] == 1
    n = 3 * (N_CHECKPOINTS + 1)
    assert metrics["inputs"]["n_checkpoints"] == n
    files = sorted(runs.glob("seed*/*.safetensors"))
    D = np.load(folder / "distances.npy")
    # read by the safetensors package itself; distances do not depend on the column order
    rows = [np.concatenate([v.reshape(-1) for _, v in sorted(load_file(f).items())]) for f in files]
    expected = pairwise_truth(np.array(rows, dtype=np.float64))
    np.testing.assert_allclose(D, expected, rtol=TOLERANCE[("euclidean", "float32")], atol=0)
    # three runs from different initialisations, each in training order, earliest first
    assert len(metrics["runs"]) == 3
    for run in metrics["runs"]:
        epochs = [int(re.search(r"epoch_(\d+)", name).group(1)) for name in run["order_names"]]
        seeds = {name.split("/")[0] for name in run["order_names"]}
        assert len(seeds) == 1 and epochs == list(range(N_CHECKPOINTS + 1))
        assert run["direction_confidence"] > 0.5
        np.testing.assert_allclose(run["step_norms"], np.diag(D[np.ix_(run["order"], run["order"])], 1))
        assert run["path_from_exact_sums"]
    shifted = next(r for r in metrics["runs"] if r["order_names"][0].startswith("seed1"))
    # the data change at checkpoint SHIFT_AT is found within one checkpoint
    positions = [s["position"] for s in shifted["shifts"] if s["kind"] == "shift"]
    assert any(abs(p - SHIFT_AT) <= 1 for p in positions), shifted["shifts"]
    for run in metrics["runs"]:
        if run is not shifted:
            assert not [s for s in run["shifts"] if s["kind"] == "shift"], run["shifts"]
    embedding = metrics["embedding"]
    assert len(embedding["coordinates"]) == n and len(embedding["explained_variance_ratio"]) == 3


def test_analyze_recovers_the_runs_of_different_initialisations(runs):
    from wtraj.pipeline import analyze

    analysis = analyze([runs / f"seed{i}" for i in range(3)], backend="reference", progress=False)
    assert analysis.runs_from == "recovered"
    recovered = [{analysis.groups[row] for row in run.order} for run in analysis.runs]
    assert sorted(len(r) for r in recovered) == [1, 1, 1] and len(recovered) == 3, recovered


def test_analyze_csvs(report):
    _, _, folder = report
    steps = list(csv.DictReader(open(folder / "steps.csv")))
    assert len(steps) == 3 * (N_CHECKPOINTS + 1)
    assert steps[0]["step_norm"] == "" and float(steps[1]["step_norm"]) > 0
    layers = list(csv.DictReader(open(folder / "layers.csv")))
    n_layers = len(json.loads((folder / "metrics.json").read_text())["layers"])
    assert len(layers) == 3 * N_CHECKPOINTS * n_layers
    # per-layer steps add up to the whole step (squared)
    first = [r for r in layers if r["run"] == steps[1]["run"] and r["position"] == "1"]
    total = np.sqrt(sum(float(r["step_norm"]) ** 2 for r in first))
    assert total == pytest.approx(float(steps[1]["step_norm"]), rel=1e-6)


def test_report_html_embeds_every_figure(report):
    _, _, folder = report
    page = (folder / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5
    pngs = {p.read_bytes() for p in folder.glob("*.png")}
    assert {base64.b64decode(i) for i in images} == pngs
    assert "seed1/epoch_000.safetensors" in page


def test_existing_output_is_refused_then_overwritten(runs, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ("analyze", runs / "seed0", "--out", out, "--backend", "reference")
    assert _run(capsys, *argv)[0] == 0
    first = (out / "metrics.json").read_bytes()
    first_written = (out / "metrics.json").stat().st_mtime_ns
    status, _, err = _run(capsys, *argv)
    assert status == 1
    assert err.count("\n") == 1 and "already exists; pass --overwrite" in err
    assert (out / "metrics.json").read_bytes() == first
    status, text, err = _run(capsys, *argv, "--overwrite")
    assert status == 0 and err == ""
    assert "11 checkpoints" in text and f"report: {out / 'report.html'}" in text
    # written anew (its "created" time may fall in the same second)
    assert (out / "metrics.json").stat().st_mtime_ns > first_written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_overwrite_refuses_a_folder_wtraj_did_not_write(runs, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    status, _, err = _run(capsys, "analyze", runs / "seed0", "--out", out, "--overwrite")
    assert status == 1
    assert err.count("\n") == 1 and "was not written by wtraj" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_interrupted_analyze_leaves_nothing(runs, tmp_path, capsys, monkeypatch):
    from wtraj.report import plots

    def interrupted(figure):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "png_bytes", interrupted)
    status, _, err = _run(capsys, "analyze", runs / "seed0", "--out", tmp_path / "r")
    assert status == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


# errors: one line, no traceback, exit status 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["analyze", "{missing}", "--out", "{out}"], "no such file or folder"),
        (["analyze", "{empty}", "--out", "{out}"], "no checkpoints found"),
        (
            ["analyze", "{runs}/seed0", "--out", "{out}", "--include", "("],
            "not a regular expression",
        ),
        (["analyze", "{runs}/seed0", "--out", "{out}", "--memory-budget", "lots"], "is not a size"),
        (["analyze", "{runs}/seed0", "--out", "{out}", "--runs", "0"], "--runs must be"),
        (
            ["analyze", "{runs}/seed0", "--out", "{out}", "--runs", "2", "--runs-from", "inputs"],
            "not both",
        ),
        (["analyze", "{runs}/seed0/epoch_000.safetensors", "--out", "{out}"], "at least 2"),
        (["diff", "{missing}", "{runs}/seed0/epoch_000.safetensors"], "no such file or folder"),
        (["order", "{empty}"], "no checkpoints found"),
        (["demo", "--samples", "{missing}", "--out", "{out}"], "sample checkpoints not found"),
    ],
)
def test_user_errors_are_one_line(argv, message, runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    fill = {"missing": tmp_path / "nope", "empty": empty, "out": tmp_path / "out", "runs": runs}
    status, out, err = _run(capsys, *[a.format(**fill) for a in argv])
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "analyze", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])


def test_no_command_prints_help(capsys):
    status, _, err = _run(capsys)
    assert status == 1 and "analyze" in err and "demo" in err


# diff and order


def test_diff_matches_numpy(runs, capsys):
    a, b = runs / "seed0" / "epoch_002.safetensors", runs / "seed0" / "epoch_005.safetensors"
    # the float64 reference backend, passed through --backend: exact to rounding
    status, out, _ = _run(capsys, "diff", a, b, "--json", "--backend", "reference")
    assert status == 0
    result = json.loads(out)
    from safetensors.numpy import load_file

    ta, tb = load_file(a), load_file(b)
    xa = np.concatenate([ta[k].ravel() for k in sorted(ta)]).astype(np.float64)
    xb = np.concatenate([tb[k].ravel() for k in sorted(tb)]).astype(np.float64)
    distance = np.linalg.norm(xa - xb)
    assert result["distance"] == pytest.approx(distance, rel=1e-12)
    assert result["relative_change"] == pytest.approx(distance / np.linalg.norm(xa), rel=1e-12)
    cosine = xa @ xb / (np.linalg.norm(xa) * np.linalg.norm(xb))
    assert result["cosine_similarity"] == pytest.approx(cosine, abs=1e-12)
    distances = [layer["distance"] for layer in result["layers"]]
    assert distances == sorted(distances, reverse=True)
    for layer in result["layers"]:
        expected = np.linalg.norm(ta[layer["name"]].astype(float) - tb[layer["name"]])
        assert layer["distance"] == pytest.approx(expected, rel=1e-12)
    # the default backend sums float32 tiles: ~1e-7 relative (wtraj.pairwise docs)
    status, out, _ = _run(capsys, "diff", a, b, "--json", "--no-progress")
    assert json.loads(out)["distance"] == pytest.approx(distance, rel=1e-6)
    status, text, _ = _run(capsys, "diff", a, b, "--top", "1", "--backend", "reference")
    assert status == 0 and "distance" in text and f"{len(result['layers']) - 1} more" in text
    # the similarity, said plainly, not the 1 - cos distance of pairwise(metric="cosine")
    assert f"cosine similarity {cosine:.9f}" in text and "cos similarity" in text


def test_order_recovers_shuffled_checkpoints(runs, tmp_path, capsys):
    # copy one run under names that say nothing about the epoch, in a scrambled order
    rng = np.random.default_rng(0)
    files = sorted((runs / "seed2").glob("*.safetensors"))
    labels = rng.permutation(len(files))
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for label, file in zip(labels, files, strict=True):
        shutil.copy(file, shuffled / f"ckpt_{label:02d}.safetensors")
    status, out, _ = _run(capsys, "order", shuffled, "--json", "--backend", "reference")
    assert status == 0
    result = json.loads(out)
    true_epoch = {f"ckpt_{label:02d}.safetensors": i for i, label in enumerate(labels)}
    assert [true_epoch[name] for name in result["names"]] == list(range(len(files)))
    assert result["direction_confidence"] > 0.5



def _warm_up_stopped(folder: Path) -> list[str]:
    """13 checkpoints on a line whose steps grow, then begin to shrink, and whose norm grows.

    The distances alone read such a run backwards (steps only grow, as seen
    from either end); the norms tell the start. Saved under scrambled names;
    returns the names in training order.
    """
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    along = rng.standard_normal(64)
    along /= np.linalg.norm(along)
    start = rng.standard_normal(64)
    start -= (start @ along) * along
    start /= np.linalg.norm(start)
    position = 0.01 * np.concatenate([[0.0], np.cumsum([1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5])])
    folder.mkdir()
    names = []
    for epoch, label in enumerate(rng.permutation(position.shape[0])):
        names.append(f"ckpt_{label:02d}.safetensors")
        weights = (start + position[epoch] * along).astype(np.float32)
        save_file({"w": weights}, str(folder / names[-1]))
    return names


def test_order_and_analyze_take_the_direction_from_the_norms(tmp_path, capsys):
    in_training_order = _warm_up_stopped(tmp_path / "run")
    status, out, _ = _run(capsys, "order", tmp_path / "run", "--json", "--no-progress")
    assert status == 0
    result = json.loads(out)
    assert result["names"] == in_training_order
    # the distance points the other way: a low confidence
    assert 0.5 <= result["direction_confidence"] <= 0.6
    (run,) = wtraj.analyze(tmp_path / "run", progress=False).runs
    assert run.checkpoints[0].endswith(in_training_order[0])
    assert run.checkpoints[-1].endswith(in_training_order[-1])


# demo and entry points


def test_demo_on_a_samples_folder(runs, tmp_path, capsys, monkeypatch):
    samples = tmp_path / "samples"
    shutil.copytree(runs / "seed0", samples / "run_a")
    shutil.copytree(runs / "seed2", samples / "run_b")
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(
        capsys, "demo", "--samples", samples, "--json", "--backend", "reference", "--runs-from", "inputs"
    )
    assert status == 0
    result = json.loads(out)
    assert Path(result["out"]) == Path("wtraj-demo-report") and len(result["runs"]) == 2
    assert [run["first"] for run in result["runs"]] == [
        "run_a/epoch_000.safetensors",
        "run_b/epoch_000.safetensors",
    ]
    assert (tmp_path / "wtraj-demo-report" / "report.html").exists()
    status, _, err = _run(capsys, "demo", "--samples", samples)
    assert status == 1 and "--overwrite" in err


def test_default_samples_is_next_to_the_package():
    assert default_samples() == Path(wtraj.__file__).resolve().parent.parent / "samples"


def test_python_dash_m_and_quiet_progress_when_not_a_terminal(runs, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "wtraj", "diff", str(runs / "seed0" / "epoch_000.safetensors"),
         str(runs / "seed0" / "epoch_001.safetensors"), "--backend", "reference"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "relative change" in completed.stdout
    # stderr is a pipe, not a terminal: no progress bar
    assert completed.stderr == ""


def test_python_dash_m_exits_with_the_status_of_the_command(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "wtraj", "analyze", str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "missing" in completed.stderr and completed.stdout == ""
