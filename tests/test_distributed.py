"""Scale-out on torch.distributed: real gloo process groups of 2 and 4 processes on localhost.

Every public function given ``group=`` returns, on every rank, what one
process returns (within 1e-12 relative: only the order of float64 additions
differs) and the same thing on every rank; errors (a NaN in one rank's
columns, a file one rank cannot open or read, a rank that dies) are raised
on every rank, naming the rank and the file. Few process groups are started
(each costs an interpreter, torch and the kernels' cache), many checks run
inside each: tests/distributed_worker.py.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch.distributed")
from distributed_cases import cases, run_case, write_data  # noqa: E402

TESTS = Path(__file__).parent
ROOT = TESTS.parent
# relative agreement with one process: float64 sums added in another order
RTOL = 1e-12
# Pair tiles from float32 tile sums: the Numba kernels sum a pair's float32
# tile in an order that depends on which rows share the block (rows go in
# pairs and groups of four), so a tile of other rows rounds differently, at
# float32's level (measured 1.5e-8); float64 sums (cosine, float64 input) are exact.
FLOAT32_PAIR_TILES = {f"pairs-{m}" for m in ("euclidean", "sqeuclidean", "inner", "cityblock")} | {
    "pairs-small", "pairs-list", "pairs-overflow"
}
RTOL_FLOAT32_PAIR_TILES = 1e-7
SIZES = (2, 4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(scenario: str, size: int, data: Path, out: Path) -> list[subprocess.Popen]:
    out.mkdir()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    return [
        subprocess.Popen(
            [sys.executable, str(TESTS / "distributed_worker.py"), scenario, str(rank), str(size),
             str(port), str(data), str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for rank in range(size)
    ]


def collect(processes: list[subprocess.Popen], out: Path, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    logs = []
    for p in processes:
        try:
            logs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
        except subprocess.TimeoutExpired:
            for q in processes:
                q.kill()
            pytest.fail(f"a rank did not finish within {timeout} s (hang)")
    results = []
    for rank, (p, log) in enumerate(zip(processes, logs)):
        path = out / f"rank{rank}.pkl"
        ended = {"exit": p.returncode, "log": log}
        results.append(pickle.loads(path.read_bytes()) if path.exists() else ended)
    return results


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("distributed-data")
    write_data(folder)
    shutil.copytree(folder / "sharded", folder / "broken")
    shard = sorted((folder / "broken" / "checkpoint-2").glob("model-*.safetensors"))[-1]
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size - 100)
    return folder


@pytest.fixture(scope="module")
def groups(data, tmp_path_factory) -> dict:
    """Every process group of this module, started together, and the one-process results meanwhile."""
    root = tmp_path_factory.mktemp("distributed-out")
    started = {
        ("cases", size): launch("cases", size, data, root / f"cases{size}") for size in SIZES
    }
    started[("killed", 2)] = launch("killed", 2, data, root / "killed2")
    torchrun = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "-m", "wtraj", "analyze", str(data / "sharded"), "--out", str(root / "torchrun-report")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=root, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    one = {name: run_case(function, None) for name, function in cases(data).items()}
    cli = subprocess.run(
        [sys.executable, "-m", "wtraj", "analyze", str(data / "sharded"), "--out", str(root / "one-report")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    results = {key: collect(ps, root / f"{key[0]}{key[1]}", 300) for key, ps in started.items()}
    stdout, stderr = torchrun.communicate(timeout=300)
    return {
        "one": one, **results, "cli": (cli, root / "one-report"),
        "torchrun": (torchrun.returncode, stdout, stderr, root / "torchrun-report"),
    }  # fmt: skip


def assert_same(got: dict, expected: dict, what: str, rtol: float = RTOL) -> None:
    if "error" in expected or "error" in got:
        assert got == expected, f"{what}: {got} != {expected}"
        return
    assert got.keys() == expected.keys(), what
    for key, value in expected.items():
        scale = float(np.nanmax(np.abs(value))) if value.size and np.isfinite(value).any() else 0.0
        np.testing.assert_allclose(
            got[key], value, rtol=rtol, atol=rtol * 1e-2 * scale, err_msg=f"{what}: {key}"
        )


@pytest.mark.parametrize("size", SIZES)
def test_every_rank_returns_what_one_process_returns(groups, data, size):
    ranks = groups[("cases", size)]
    assert all("exit" not in r for r in ranks), ranks
    for name, expected in groups["one"].items():
        rtol = RTOL_FLOAT32_PAIR_TILES if name in FLOAT32_PAIR_TILES else RTOL
        for rank, result in enumerate(ranks):
            assert_same(result[name], expected, f"{name}, rank {rank} of {size}", rtol)
            # and every rank holds the very same values
            if "error" not in expected:
                for key in expected:
                    np.testing.assert_array_equal(result[name][key], ranks[0][name][key])


def test_the_cases_cover_what_the_issue_names(groups):
    one = groups["one"]
    # every case computes, but those of a NaN
    assert [name for name, result in one.items() if "error" in result] == ["pairs-nan", "nan"]
    assert one["pairs-nan"] == one["nan"]
    # a NaN in one rank's columns names the lowest row over all ranks, as one process does
    assert one["nan"]["error"].startswith("ValueError: X row 4, column 16389 is nan")
    assert "error" not in one["pairwise-overflow"] and np.isfinite(one["pairwise-overflow"]["D"]).all()
    assert len([k for k in one["sharded-stats"] if k.endswith("/distances")]) == 5


@pytest.mark.parametrize("size", SIZES)
def test_a_file_one_rank_cannot_open_fails_on_every_rank(groups, size):
    for result in groups[("cases", size)]:
        error = result["open-fails"]["error"]
        assert error.startswith("ValueError: wtraj: opening the input failed on rank 1 of"), error
        assert "checkpoint-2" in error and "model-0000" in error, error


@pytest.mark.parametrize("size", SIZES)
def test_a_file_one_rank_cannot_read_fails_on_every_rank(groups, size):
    ranks = groups[("cases", size)]
    for result in ranks:
        error = result["read-fails"]["error"]
        failed = f"OSError: wtraj: the pass over 5 checkpoints failed on rank {size - 1} of {size}"
        assert error.startswith(failed), error
        assert "checkpoint-3/model-00002-of-00002.safetensors" in error and "Input/output error" in error
        assert_same(result["after-failures"], groups["one"]["sharded-step_norms"], "after failures")


def test_a_rank_killed_mid_pass_fails_the_others_within_the_timeout(groups):
    survivor, killed = groups[("killed", 2)]
    assert killed["exit"] == 3
    error = survivor["killed"]["error"]
    assert error.startswith("RuntimeError: wtraj: "), error
    assert "another rank stopped answering" in error and "rank 0 of 2" in error
    # the worker's process group timeout is 30 s
    assert survivor["seconds"] < 60


def test_the_cli_under_torchrun_writes_the_report_of_one_process_once(groups):
    cli, one_report = groups["cli"]
    code, stdout, stderr, report = groups["torchrun"]
    assert cli.returncode == 0, cli.stderr
    assert code == 0, stderr
    # rank 0 alone prints and writes
    assert stdout.count("report: ") == 1 and stdout.count("5 checkpoints x 30,679 parameters") == 1
    assert sorted(p.name for p in report.iterdir()) == sorted(p.name for p in one_report.iterdir())
    np.testing.assert_allclose(
        np.load(report / "distances.npy"), np.load(one_report / "distances.npy"), rtol=RTOL, atol=0
    )
    one_rows = [line.split(",") for line in (one_report / "steps.csv").read_text().splitlines()]
    rows = [line.split(",") for line in (report / "steps.csv").read_text().splitlines()]
    assert len(rows) == len(one_rows) and rows[0] == one_rows[0]
    for row, one_row in zip(rows[1:], one_rows[1:]):
        for value, one_value in zip(row, one_row, strict=True):
            try:
                expected = float(one_value)
            except ValueError:
                assert value == one_value
                continue
            assert float(value) == pytest.approx(expected, rel=RTOL, nan_ok=True)
