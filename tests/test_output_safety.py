"""What ``wtraj analyze`` may replace, and what it leaves behind when stopped or racing.

Inputs are tiny safetensors runs made here; every refusal is checked to leave
every byte under the test folder as it was. Signals are sent to a CLI run in
a subprocess whose figure rendering is slowed down, so that it is stopped
while its work folder exists.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="the test runs are saved as safetensors")

from checkpoints_fixtures import make_state  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from wtraj.cli import main  # noqa: E402
from wtraj.report.output_target import MARKER, prepare_output, read_marker  # noqa: E402
from wtraj.report.writer import OutputFolder  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHAPES = {"a.weight": (3, 4), "a.bias": (3,)}
# slow enough that the test can signal it while the work folder exists
SLOW_RENDER = textwrap.dedent(
    """
    import sys, time
    from wtraj.report import plots
    from wtraj.cli import main

    def slow_png_bytes(figure):
        time.sleep(120)
        raise AssertionError("the run was not stopped")

    plots.png_bytes = slow_png_bytes
    sys.exit(main(sys.argv[1:]))
    """
)


def _make_run(folder: Path, n: int = 3, shapes=SHAPES, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        save_file(make_state(seed * 100 + i, shapes=shapes), str(folder / f"step_{i}.safetensors"))
    return folder


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))
    }


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _analyze(capsys, out, *inputs, overwrite=False):
    extra = ("--overwrite",) if overwrite else ()
    return _run(capsys, "analyze", *inputs, "--out", out, "--backend", "reference", "--no-progress", *extra)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _wait_for(condition, what: str, process: subprocess.Popen | None = None, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _work_folders(parent: Path, name: str = "report") -> list[Path]:
    return sorted(parent.glob(f".{name}.partial-*"))


def _own_report(folder: Path, text: str = "old") -> None:
    with OutputFolder(folder) as out:
        out.write_text("a.txt", text)


# item 1: --overwrite replaces only wtraj's own report


def _case_out_is_the_input_folder(tmp_path):
    return tmp_path / "runs", [tmp_path / "runs"]


def _case_out_holds_the_input(tmp_path):
    return tmp_path / "runs", [tmp_path / "runs" / "seed0"]


def _case_out_is_the_parent_of_the_input(tmp_path):
    return tmp_path, [tmp_path / "runs" / "seed0"]


def _case_out_lies_inside_the_input_folder(tmp_path):
    return tmp_path / "runs" / "seed0", [tmp_path / "runs"]


def _case_out_is_an_input_file(tmp_path):
    files = sorted((tmp_path / "runs" / "seed0").glob("*.safetensors"))
    return files[0], files


def _case_out_is_a_symlink_to_the_input(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "runs" / "seed0")
    return tmp_path / "link", [tmp_path / "runs" / "seed0"]


def _case_out_has_no_marker(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    return tmp_path / "mine", [tmp_path / "runs" / "seed0"]


def _case_out_is_a_report_with_other_files(tmp_path):
    _own_report(tmp_path / "report")
    (tmp_path / "report" / "notes.txt").write_text("keep")
    return tmp_path / "report", [tmp_path / "runs" / "seed0"]


def _case_out_is_a_report_with_a_subfolder(tmp_path):
    _own_report(tmp_path / "report")
    (tmp_path / "report" / "a.txt").unlink()
    (tmp_path / "report" / "a.txt").mkdir()
    (tmp_path / "report" / "a.txt" / "data.bin").write_bytes(b"keep")
    return tmp_path / "report", [tmp_path / "runs" / "seed0"]


def _case_out_has_a_forged_marker(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / MARKER).write_text("{}")
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    return tmp_path / "mine", [tmp_path / "runs" / "seed0"]


REFUSALS = {
    _case_out_is_the_input_folder: "is the input",
    _case_out_holds_the_input: "holds the input",
    _case_out_is_the_parent_of_the_input: "holds the input",
    _case_out_lies_inside_the_input_folder: "lies inside the input folder",
    _case_out_is_an_input_file: "is the input",
    _case_out_is_a_symlink_to_the_input: "is the input",
    _case_out_has_no_marker: "was not written by wtraj",
    _case_out_is_a_report_with_other_files: "holds files wtraj did not write (notes.txt)",
    _case_out_is_a_report_with_a_subfolder: "holds files wtraj did not write (a.txt)",
    _case_out_has_a_forged_marker: "was not written by wtraj",
}


@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: case.__name__.removeprefix("_case_"))
def test_overwrite_never_replaces_inputs_or_other_folders(case, tmp_path, capsys):
    _make_run(tmp_path / "runs" / "seed0")
    _make_run(tmp_path / "runs" / "seed1", seed=1)
    out, inputs = case(tmp_path)
    before = _snapshot(tmp_path)
    status, text, err = _analyze(capsys, out, *inputs, overwrite=True)
    assert status == 1 and text == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert REFUSALS[case] in err, err
    assert _snapshot(tmp_path) == before


def test_overwrite_never_replaces_the_current_directory(tmp_path, capsys, monkeypatch):
    run = _make_run(tmp_path / "runs" / "seed0")
    # a wtraj report, which the user has made the current directory
    _own_report(tmp_path / "report")
    monkeypatch.chdir(tmp_path / "report")
    before = _snapshot(tmp_path)
    for out in (".", tmp_path / "report", ".."):
        status, _, err = _analyze(capsys, out, run, overwrite=True)
        assert status == 1 and err.count("\n") == 1
        assert "current directory" in err or "holds the input" in err, err
        assert _snapshot(tmp_path) == before
    status, _, err = _analyze(capsys, ".", run)
    assert status == 1 and "already exists" in err


def test_overwrite_replaces_its_own_report_and_demo_reruns(tmp_path, capsys, monkeypatch):
    run = _make_run(tmp_path / "runs" / "seed0")
    out = tmp_path / "report"
    assert _analyze(capsys, out, run)[0] == 0
    first = read_marker(out)
    assert first is not None and set(first["files"]) >= {"metrics.json", "layers.csv", "report.html"}
    assert _analyze(capsys, out, run, overwrite=True)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "runs"]
    assert {p.name for p in out.iterdir()} == {*first["files"], MARKER}
    # demo --overwrite replaces its own earlier output
    samples = tmp_path / "samples"
    shutil.copytree(run, samples / "run_a")
    _make_run(samples / "run_b", seed=1)
    monkeypatch.chdir(tmp_path)
    demo = ("demo", "--samples", samples, "--backend", "reference", "--runs-from", "inputs")
    assert _run(capsys, *demo)[0] == 0
    assert _run(capsys, *demo)[0] == 1
    status, _, err = _run(capsys, *demo, "--overwrite")
    assert status == 0, err
    assert read_marker(tmp_path / "wtraj-demo-report") is not None


def test_inputs_are_byte_identical_after_an_overwrite(tmp_path, capsys):
    runs = tmp_path / "runs"
    _make_run(runs / "seed0")
    _make_run(runs / "seed1", seed=1)
    before = _snapshot(runs)
    out = tmp_path / "report"
    for overwrite in (False, True, True):
        assert _analyze(capsys, out, runs / "seed0", runs / "seed1", overwrite=overwrite)[0] == 0
    assert _snapshot(runs) == before


# item 2: writability first, symlinks, signals, leftovers, racing runs


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder nobody may create entries in (chmod, or chattr +i when running as root)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if os.access(folder, os.W_OK):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        probe = Path(tempfile.mkdtemp(dir=folder))
    except OSError:
        probe = None
    if probe is not None:
        probe.rmdir()
        folder.chmod(0o755)
        pytest.skip("cannot make a folder unwritable here (root without chattr)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def _no_reading(*args, **kwargs):
    raise AssertionError("the checkpoints were read before the output was checked")


@pytest.mark.parametrize("where", ["unwritable", "under_a_file"])
def test_unwritable_out_is_refused_before_the_analysis(where, request, tmp_path, capsys, monkeypatch):
    import wtraj

    run = _make_run(tmp_path / "runs" / "seed0")
    if where == "unwritable":
        out = request.getfixturevalue("unwritable_folder") / "report"
        message = "is not writable"
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub" / "report"
        message = "is not a folder"
    monkeypatch.setattr(wtraj, "open", _no_reading)
    status, _, err = _analyze(capsys, out, run)
    assert status == 1 and err.count("\n") == 1, err
    assert message in err and str(out) in err


def test_out_symlink_to_another_file_system(tmp_path, capsys):
    elsewhere = Path("/dev/shm")
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) to link to")
    far = Path(tempfile.mkdtemp(dir=elsewhere))
    try:
        run = _make_run(tmp_path / "runs" / "seed0")
        link = tmp_path / "out"
        link.symlink_to(far / "report")
        assert _analyze(capsys, link, run)[0] == 0
        status, _, err = _analyze(capsys, link, run, overwrite=True)
        assert status == 0, err
        assert link.is_symlink() and read_marker(far / "report") is not None
        assert [p.name for p in far.iterdir()] == ["report"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "runs"]
    finally:
        shutil.rmtree(far)


def _start_slow_analyze(tmp_path: Path, run: Path, out: Path, *extra: str) -> subprocess.Popen:
    script = tmp_path / "slow_analyze.py"
    script.write_text(SLOW_RENDER)
    argv = ["analyze", str(run), "--out", str(out), "--backend", "reference", "--no-progress", *extra]
    return subprocess.Popen(
        [sys.executable, str(script), *argv],
        cwd=tmp_path,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_signal_while_writing_leaves_no_work_folder(signum, status, overwrite, tmp_path):
    run = _make_run(tmp_path / "runs" / "seed0")
    out = tmp_path / "reports" / "report"
    out.parent.mkdir()
    if overwrite:
        _own_report(out)
    before = _snapshot(tmp_path / "reports")
    process = _start_slow_analyze(tmp_path, run, out, *(["--overwrite"] if overwrite else []))
    try:
        # the work folder exists; a moment later the figures are being drawn
        _wait_for(lambda: _work_folders(out.parent), "the work folder", process)
        time.sleep(1.0)
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == status, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert _snapshot(tmp_path / "reports") == before


def test_the_next_run_sweeps_only_provable_leftovers_of_dead_runs(tmp_path, capsys):
    run = _make_run(tmp_path / "runs" / "seed0")
    out = tmp_path / "reports" / "report"
    out.parent.mkdir()
    killed = _start_slow_analyze(tmp_path, run, out)
    try:
        _wait_for(lambda: _work_folders(out.parent), "the work folder", killed)
        time.sleep(1.0)
    finally:
        killed.kill()
        killed.communicate()
    [dead] = _work_folders(out.parent)
    # a folder with the same kind of name but no owner file is not provably wtraj's: kept
    foreign = out.parent / ".report.partial-mine"
    foreign.mkdir()
    (foreign / "data.txt").write_text("keep")
    # a live run's work folder is kept, even beside a dead one
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            f"""
            import sys, time
            from pathlib import Path
            from wtraj.report.work_folder import WorkFolder
            print(WorkFolder.create(Path({str(out)!r})).path, flush=True)
            time.sleep(120)
            """
        )],
        env=_environment(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        live = Path(holder.stdout.readline().strip())
        assert live.is_dir()
        status, _, err = _analyze(capsys, out, run)
        assert status == 0, err
        assert not dead.exists() and live.is_dir() and (foreign / "data.txt").read_text() == "keep"
    finally:
        holder.kill()
        holder.communicate()
    # now that its process is gone, the next run removes it
    assert _analyze(capsys, out, run, overwrite=True)[0] == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [".report.partial-mine", "report"]


def test_a_run_killed_while_replacing_loses_no_report(tmp_path):
    target = tmp_path / "report"
    _own_report(target, "old")
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from wtraj.report.writer import OutputFolder

        rename = os.rename

        def rename_then_hang(source, destination):
            rename(source, destination)
            if "previous" in str(destination):
                print("moved aside", flush=True)
                time.sleep(120)

        os.rename = rename_then_hang
        with OutputFolder({str(target)!r}, overwrite=True) as out:
            out.write_text("a.txt", "new")
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=_environment(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "moved aside"
        assert not target.exists()
    finally:
        process.kill()
        process.communicate()
    prepare_output(target, overwrite=True)
    # the new report was complete: it is put in place, and the leftover removed
    assert (target / "a.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


@pytest.mark.parametrize("put_back_fails", [False, True], ids=["put_back", "put_back_fails"])
def test_a_failed_rename_loses_no_report(put_back_fails, tmp_path, monkeypatch):
    target = tmp_path / "report"
    _own_report(target, "old")
    rename = os.rename

    def refused(source, destination):
        # the new report may not be renamed into place (and, for put_back_fails, nothing may)
        if Path(destination) == target and (put_back_fails or Path(source).name == "report"):
            raise PermissionError(errno.EACCES, "refused", str(destination))
        rename(source, destination)

    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", refused)
        with pytest.raises(PermissionError), OutputFolder(target, overwrite=True) as out:
            out.write_text("a.txt", "new")
    if put_back_fails:
        # both reports wait in the work folder; the next run puts the complete new one in place
        assert not target.exists()
        prepare_output(target, overwrite=True)
        assert (target / "a.txt").read_text() == "new"
    else:
        assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_what_replaced_the_report_meanwhile_is_kept(kind, tmp_path):
    target = tmp_path / "report"
    _own_report(target, "old")
    with pytest.raises(FileExistsError, match="was not written by wtraj|is not a folder"):
        with OutputFolder(target, overwrite=True) as out:
            out.write_text("a.txt", "new")
            # while the report is being built, the user puts their own folder or file there
            shutil.rmtree(target)
            if kind == "folder":
                target.mkdir()
                (target / "a.txt").write_text("mine")
            else:
                target.write_text("mine")
    expected = {"report": None, "report/a.txt": b"mine"} if kind == "folder" else {"report": b"mine"}
    assert _snapshot(tmp_path) == expected


def test_a_report_swapped_in_while_the_old_one_is_checked_is_no_foreign_folder(tmp_path, monkeypatch):
    from wtraj.report import output_target

    target = tmp_path / "report"
    _own_report(target, "first")
    real_read_marker = output_target.read_marker

    def read_while_another_run_replaces(folder):
        # another run moves the report aside before its marker is read, then puts its own in place
        os.rename(target, tmp_path / "aside")
        marker = real_read_marker(folder)
        _own_report(target, "second")
        return marker

    with monkeypatch.context() as patch:
        patch.setattr(output_target, "read_marker", read_while_another_run_replaces)
        assert prepare_output(target, overwrite=True) == target.resolve()
    assert (target / "a.txt").read_text() == "second"


def test_interleaved_overwrites_leave_one_complete_report(tmp_path):
    target = tmp_path / "reports" / "report"
    target.parent.mkdir()
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, time
        from wtraj.report.writer import OutputFolder

        # all runs start replacing at the same moment
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        for i in range(60):
            with OutputFolder({str(target)!r}, overwrite=True) as out:
                for name in ("a.txt", "b.txt", "c.txt"):
                    out.write_text(name, f"{{os.getpid()}}-{{i}}")
        """
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=_environment(), stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    time.sleep(2.0)
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, errors
    assert [p.name for p in target.parent.iterdir()] == ["report"]
    contents = {(target / name).read_text() for name in ("a.txt", "b.txt", "c.txt")}
    assert len(contents) == 1 and read_marker(target)["files"] == ["a.txt", "b.txt", "c.txt"]


# item 16: tensor names are data: no formula in a CSV cell, no mathtext in a figure

HOSTILE_NAMES = {
    "$x$": (2, 3),
    '=HYPERLINK("http://a")': (3,),
    "w$^{$": (2,),
    "+cmd": (2,),
    "-2+3": (2,),
    "@SUM(A1)": (2,),
    "\tTAB": (2,),
    "plain.weight": (4,),
}


def test_hostile_tensor_names_are_written_as_text(tmp_path, capsys):
    run = _make_run(tmp_path / "runs" / "seed0", n=4, shapes=HOSTILE_NAMES)
    # a checkpoint file name is a cell of steps.csv
    (run / "step_3.safetensors").rename(run / "=step_3.safetensors")
    out = tmp_path / "report"
    status, _, err = _analyze(capsys, out, run)
    assert status == 0, err
    names = {row["name"] for row in csv.DictReader(open(out / "steps.csv", newline=""))}
    assert "'=step_3.safetensors" in names and "step_0.safetensors" in names
    layers = {row["layer"] for row in csv.DictReader(open(out / "layers.csv", newline=""))}
    assert layers == {
        "$x$", "'=HYPERLINK(\"http://a\")", "w$^{$", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tTAB", "plain.weight",
    }  # fmt: skip
    # metrics.json keeps the names as they are
    metrics = json.loads((out / "metrics.json").read_text())
    assert {layer["name"] for layer in metrics["layers"]} == set(HOSTILE_NAMES)
    assert (out / "layers.png").stat().st_size > 0


def test_csv_text_quotes_formula_starts_only():
    from wtraj.report.build import csv_text

    for value in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert csv_text(value) == "'" + value
    for value in ("a=1", "x-1", "$x$", "", "'quoted"):
        assert csv_text(value) == value


def test_numbers_in_csvs_are_not_quoted(tmp_path, capsys):
    run = _make_run(tmp_path / "runs" / "seed0")
    assert _analyze(capsys, tmp_path / "report", run)[0] == 0
    for name in ("steps.csv", "layers.csv"):
        rows = list(csv.DictReader(open(tmp_path / "report" / name, newline="")))
        numbers = [row["step_norm"] for row in rows if row["step_norm"]]
        assert numbers and np.all(np.isfinite([float(x) for x in numbers]))
