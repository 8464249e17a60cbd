"""The example notebook runs top to bottom (where nbclient and ipykernel are installed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "analyze.ipynb"


@pytest.mark.slow
def test_analyze_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the [test] extra has it)")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (the [test] extra has it)")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (the [test] extra has it)")
    pytest.importorskip("pandas", reason="the notebook shows DataFrames")
    pytest.importorskip("safetensors", reason="the sample runs are safetensors files")
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    notebook = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    summary = notebook.cells[1].outputs[0]["data"]
    # the result shows as the compact HTML summary: runs table and one figure
    assert "text/html" in summary and summary["text/html"].count("<img ") == 1
    assert "start from the same checkpoint" in summary["text/html"]
    assert (tmp_path / "analyze-report" / "report.html").exists()
