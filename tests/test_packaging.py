"""What a user installing wtraj gets: the wheel, extras, ``--version``, the demo outside a clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import wtraj
from wtraj.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"wtraj {wtraj.__version__}"


def test_extras_cover_every_optional_feature():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = {extra: {req.split(">")[0].split("=")[0] for req in reqs} for extra, reqs in extras.items()}
    assert {"lightning", "torch"} <= names["lightning"]
    assert {"transformers", "accelerate", "huggingface_hub", "torch"} <= names["hf"]
    assert names["pandas"] == {"pandas"}
    optional = set().union(*(names[e] for e in ("torch", "gpu", "demo", "lightning", "hf", "pandas")))
    assert optional <= names["all"]


@pytest.mark.slow
def test_demo_runs_from_an_installed_wheel_outside_a_clone(tmp_path):
    """Build the wheel from a copy of the sources, install it alone, run ``wtraj demo`` elsewhere."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "kernels")
    shutil.copytree(REPO / "wtraj", source / "wtraj", ignore=ignore)
    shutil.copytree(REPO / "kernels", source / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "samples", source / "samples", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel")],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("wtraj-*.whl")
    assert wheel.name.startswith(f"wtraj-{wtraj.__version__}-")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True
    )
    assert len(list((site / "wtraj" / "_samples").glob("*/*.safetensors"))) == 84
    assert (site / "wtraj" / "report" / "metrics.schema.json").is_file()

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-m", "wtraj"]
    found = subprocess.run(
        [*command, "--version"], cwd=work, env=env, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == f"wtraj {wtraj.__version__}"
    schema = subprocess.run(
        [*command, "schema"], cwd=work, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(schema.stdout)["title"] == "wtraj analyze metrics.json"
    demo = subprocess.run(
        [*command, "demo", "--json", "--no-progress"], cwd=work, env=env, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr
    payload = json.loads(demo.stdout)
    assert len(payload["runs"]) == 4 and (work / "wtraj-demo-report" / "report.html").exists()
    # the installed copy was used, not this clone
    where = subprocess.run(
        [sys.executable, "-c", "import wtraj; print(wtraj.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)
