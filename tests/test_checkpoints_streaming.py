"""Streaming checkpoints: block layout, double buffering, one read per pass, the API on them."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from checkpoints_fixtures import dense, flatten, make_state
from conftest import TOLERANCE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file
from scipy.spatial.distance import cdist
from truth import pairwise_truth

import wtraj
from wtraj._blocks import COLUMN_ALIGN, Source
from wtraj.checkpoints.prefetch import prefetched
from wtraj.checkpoints.readahead import with_lookahead

# against float64 truth: the kernels sum float32 tiles in float32, then in float64 (wtraj.pairwise)


def write_run(folder: Path, shapes: dict, n: int, dtype=np.float32, seed: int = 0):
    states = [make_state(seed + i, dtype, shapes) for i in range(n)]
    for i, state in enumerate(states):
        save_file(state, str(folder / f"epoch{i}.safetensors"))
    return states


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wtraj-prefetch"]


def test_checkpoints_are_a_source(tmp_path):
    write_run(tmp_path, {"w": (3,)}, 2)
    assert isinstance(wtraj.open(tmp_path), Source)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 3 * COLUMN_ALIGN + 7), min_size=1, max_size=5),
    n=st.integers(1, 4),
    max_width=st.integers(1, 4 * COLUMN_ALIGN),
    by_layer=st.booleans(),
)
def test_blocks_cover_every_column_once(sizes, n, max_width, by_layer):
    shapes = {f"t{k}": (size,) for k, size in enumerate(sizes)}
    with tempfile.TemporaryDirectory() as folder:
        states = write_run(Path(folder), shapes, n)
        ck = wtraj.open(folder)
        names = [layer.name for layer in ck.layers]
        X = np.stack([flatten(s, names) for s in states])
        width_cap = max(COLUMN_ALIGN, max_width // COLUMN_ALIGN * COLUMN_ALIGN)
        column = 0
        for block in ck.blocks(max_width, by_layer=by_layer):
            assert block.offset == column
            if by_layer:
                # within one tensor, cut on the grid from the tensor's start
                layer = ck.layers[block.layer]
                assert layer.offset <= block.offset
                assert block.offset + block.width <= layer.offset + layer.size
                assert (block.offset - layer.offset) % COLUMN_ALIGN == 0
            else:
                # on the grid of the whole vector, across tensors, like an array's blocks
                assert block.offset % COLUMN_ALIGN == 0
                last = block.offset + block.width == ck.n_params
                assert last or block.width == width_cap
            assert 0 < block.width <= width_cap
            assert block.data.shape[0] == n and block.data.flags.c_contiguous
            np.testing.assert_array_equal(
                block.data[:, block.start : block.stop], X[:, column : column + block.width]
            )
            column += block.width
        assert column == ck.n_params


def test_handed_out_buffer_is_not_overwritten_before_the_next_request(tmp_path):
    states = write_run(tmp_path, {"w": (8 * COLUMN_ALIGN,)}, 3)
    ck = wtraj.open(tmp_path)
    X = np.stack([flatten(s, ["w"]) for s in states])
    for block in ck.blocks(COLUMN_ALIGN):
        # give the reader thread every chance to run ahead
        time.sleep(0.02)
        np.testing.assert_array_equal(
            block.data[:, block.start : block.stop], X[:, block.offset : block.offset + block.width]
        )


def test_stopping_early_stops_the_reader_thread(tmp_path):
    write_run(tmp_path, {"w": (8 * COLUMN_ALIGN,)}, 3)
    blocks = wtraj.open(tmp_path).blocks(COLUMN_ALIGN)
    next(blocks)
    assert len(prefetch_threads()) == 1
    blocks.close()
    assert prefetch_threads() == []


def test_a_failing_read_is_raised_in_the_caller():
    def fill(buffer, task):
        if task == 3:
            raise OSError("disk gone")
        buffer[0] = task

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for task, buffer in prefetched(range(10), lambda: np.zeros(1), fill):
            seen.append((task, buffer[0]))
    assert seen == [(0, 0), (1, 1), (2, 2)]
    assert prefetch_threads() == []


def test_each_file_is_read_once_per_pass(tmp_path, monkeypatch):
    write_run(tmp_path, {"a": (3 * COLUMN_ALIGN + 5,), "b": (7,), "c": (2 * COLUMN_ALIGN,)}, 3)
    ck = wtraj.open(tmp_path)
    reads = []
    real_preadv = os.preadv

    def recording_preadv(fd, buffers, offset):
        n = real_preadv(fd, buffers, offset)
        reads.append((os.readlink(f"/proc/self/fd/{fd}"), offset, n))
        return n

    monkeypatch.setattr(os, "preadv", recording_preadv)
    list(ck.blocks(COLUMN_ALIGN))
    for path in sorted(tmp_path.iterdir()):
        ranges = sorted((offset, offset + n) for name, offset, n in reads if name == str(path))
        # the data region, after the header, read end to end without overlap
        assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
        assert ranges[-1][1] == path.stat().st_size
        assert ranges[-1][1] - ranges[0][0] == 4 * ck.n_params


def test_tensors_back_to_back_in_a_file_take_one_read_per_row_and_block(tmp_path, monkeypatch):
    # 40 small tensors, stored in the file in the order of the columns (by name)
    shapes = {f"t{k:02d}": (97 * (k + 1),) for k in range(40)}
    states = write_run(tmp_path, shapes, 3)
    ck = wtraj.open(tmp_path)
    X = np.stack([flatten(s, [layer.name for layer in ck.layers]) for s in states])
    reads = []
    real_preadv = os.preadv

    def counting_preadv(fd, buffers, offset):
        reads.append(offset)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", counting_preadv)
    blocks = 0
    for block in ck.blocks(4 * COLUMN_ALIGN):
        np.testing.assert_array_equal(
            block.data[:, block.start : block.stop], X[:, block.offset : block.offset + block.width]
        )
        blocks += 1
    assert blocks == -(-ck.n_params // (4 * COLUMN_ALIGN)) > 1
    assert len(reads) == 3 * blocks


@pytest.mark.parametrize("n", [0, 1, 3, 10])
def test_lookahead_asks_for_every_later_span_once_and_n_ahead(n):
    tasks = list(with_lookahead(range(7), n))
    assert [span for span, _ in tasks] == list(range(7))
    asked = [s for _, ahead in tasks for s in ahead]
    assert asked == list(range(1, 7)) if n else asked == []
    for k, (span, _) in enumerate(tasks):
        # when span k is read, the spans up to k + n have been asked for
        assert set(range(span + 1, min(7, k + n + 1))) <= {s for _, ahead in tasks[: k + 1] for s in ahead}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_lookahead_asks_further_at_the_start_then_keeps_n_ahead(n):
    from wtraj.checkpoints.readahead import START_FACTOR

    tasks = list(with_lookahead(range(20), n))
    # the first span asks for the start's wider window (the kernels load meanwhile)
    assert tasks[0][1] == list(range(1, START_FACTOR * n + 1))
    # later spans ask for nothing until the window is n again, then span k for span k + n
    start = START_FACTOR * n - n + 1
    assert all(ahead == [] for _, ahead in tasks[1:start])
    assert all(tasks[k][1] == [k + n] for k in range(start, 20 - n))


def test_readahead_asks_for_the_bytes_of_later_blocks(tmp_path, monkeypatch):
    write_run(tmp_path, {"a": (5 * COLUMN_ALIGN + 3,), "b": (9,), "c": (3 * COLUMN_ALIGN,)}, 3)
    ck = wtraj.open(tmp_path)
    advised = []

    def recording_fadvise(fd, offset, length, advice):
        advised.append((os.readlink(f"/proc/self/fd/{fd}"), offset, length))

    monkeypatch.setattr(os, "posix_fadvise", recording_fadvise)
    # a window of 2 blocks of COLUMN_ALIGN float32 columns
    monkeypatch.setattr("wtraj.checkpoints.readahead.READAHEAD_BYTES", 2 * 3 * COLUMN_ALIGN * 4)
    list(ck.blocks(COLUMN_ALIGN))
    for path in sorted(tmp_path.iterdir()):
        ranges = sorted((offset, offset + n) for name, offset, n in advised if name == str(path))
        # every block but the first, back to back, up to the end of the file
        assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
        assert ranges[-1][1] == path.stat().st_size
        assert ranges[-1][1] - ranges[0][0] == 4 * (ck.n_params - COLUMN_ALIGN)


def test_a_file_cut_short_during_a_run_names_the_file_and_its_tensors(tmp_path):
    write_run(tmp_path, {"a": (4 * COLUMN_ALIGN,), "b": (3,), "c": (6 * COLUMN_ALIGN,)}, 2)
    blocks = wtraj.open(tmp_path).blocks(COLUMN_ALIGN)
    next(blocks)
    path = tmp_path / "epoch1.safetensors"
    os.truncate(path, path.stat().st_size // 2)
    message = r"epoch1\.safetensors: tensors 'a' to 'c': the file ended \d+ bytes early"
    with pytest.raises(ValueError, match=message):
        for _ in blocks:
            pass


def test_runs_of_tensors_break_where_the_file_or_the_dtype_does(tmp_path):
    # a float16 tensor among float32 ones is widened on its own; an excluded tensor leaves a gap
    shapes = {"a": (5000,), "b": (3000,), "c": (700,), "d": (COLUMN_ALIGN + 3,)}
    states = []
    for i in range(3):
        state = make_state(i, np.float32, shapes)
        state["b"] = state["b"].astype(np.float16)
        save_file(state, str(tmp_path / f"epoch{i}.safetensors"))
        states.append(state)
    ck = wtraj.open(tmp_path, exclude="^c$")
    names = [layer.name for layer in ck.layers]
    assert sorted(names) == ["a", "b", "d"]
    X = np.stack([flatten(s, names) for s in states])
    for width in (COLUMN_ALIGN, 1 << 20):
        np.testing.assert_array_equal(dense(ck, width), X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_on_checkpoints_matches_the_array(tmp_path, dtype):
    shapes = {"emb": (300, 100), "fc.weight": (50, 70), "fc.bias": (9,)}
    states = write_run(tmp_path, shapes, 6, dtype)
    ck = wtraj.open(tmp_path)
    X = np.stack([flatten(s, [layer.name for layer in ck.layers]) for s in states])
    rtol = TOLERANCE[("euclidean", np.dtype(dtype).name)]
    truth = pairwise_truth(X)
    np.testing.assert_allclose(wtraj.pairwise(ck), truth, rtol=rtol, atol=0)
    np.testing.assert_allclose(wtraj.pairwise(tmp_path), truth, rtol=rtol, atol=0)
    stats = wtraj.trajectory_stats(ck)
    np.testing.assert_allclose(stats.distances, truth, rtol=rtol, atol=0)


def test_step_norms_on_checkpoints_cover_every_block(tmp_path):
    shapes = {"emb": (300, 100), "fc.weight": (50, 70), "fc.bias": (9,)}
    states = write_run(tmp_path, shapes, 6, np.float64)
    ck = wtraj.open(tmp_path)
    X = np.stack([flatten(s, [layer.name for layer in ck.layers]) for s in states])
    steps = np.linalg.norm(np.diff(X, axis=0), axis=1)
    np.testing.assert_allclose(wtraj.step_norms(ck), steps, rtol=1e-12)


def test_trajectory_stats_by_layer(tmp_path):
    shapes = {"emb": (300, 100), "fc.weight": (50, 70), "fc.bias": (9,)}
    states = write_run(tmp_path, shapes, 5, np.float64)
    ck = wtraj.open(tmp_path)
    stats = wtraj.trajectory_stats(ck, by_layer=True)
    assert stats.names == ck.names
    X = np.stack([flatten(s, [layer.name for layer in ck.layers]) for s in states])
    np.testing.assert_allclose(stats.distances, cdist(X, X), rtol=1e-12)
    assert list(stats.layers) == [layer.name for layer in ck.layers]
    for layer in stats.layers.values():
        Xl = np.stack([s[layer.name].reshape(-1) for s in states])
        np.testing.assert_allclose(layer.distances, cdist(Xl, Xl), rtol=1e-12)
        np.testing.assert_allclose(layer.step_norms, np.linalg.norm(np.diff(Xl, axis=0), axis=1), rtol=1e-12)


def test_nan_is_reported_with_file_tensor_and_index(tmp_path):
    states = write_run(tmp_path, {"emb": (30, 10), "fc.weight": (5, 7)}, 3)
    states[2]["fc.weight"][4, 6] = np.inf
    save_file(states[2], str(tmp_path / "epoch2.safetensors"))
    with pytest.raises(
        ValueError,
        match=r"checkpoint 2 \('epoch2\.safetensors'\), tensor 'fc\.weight' at index \(4, 6\)",
    ):
        wtraj.pairwise(tmp_path)
    assert np.isinf(wtraj.pairwise(tmp_path, check_finite=False)[2]).sum() == 2


def test_open_with_check_finite_false_skips_the_check(tmp_path):
    states = write_run(tmp_path, {"w": (20,)}, 3)
    states[1]["w"][3] = np.nan
    save_file(states[1], str(tmp_path / "epoch1.safetensors"))
    D = wtraj.pairwise(wtraj.open(tmp_path, check_finite=False))
    assert np.isnan(D[1, 0]) and np.isfinite(D[0, 2])


def test_dense_helper_sees_every_block(tmp_path):
    states = write_run(tmp_path, {"a": (5, 5), "b": (3,)}, 2)
    ck = wtraj.open(tmp_path)
    np.testing.assert_array_equal(dense(ck), np.stack([flatten(s, ["a", "b"]) for s in states]))


@pytest.mark.parametrize("threads", ["1", "3"])
def test_read_threads_setting(tmp_path, monkeypatch, threads):
    states = write_run(tmp_path, {"w": (3 * COLUMN_ALIGN + 1,), "b": (5,)}, 5)
    monkeypatch.setenv("WTRAJ_READ_THREADS", threads)
    ck = wtraj.open(tmp_path)
    np.testing.assert_array_equal(dense(ck, COLUMN_ALIGN), np.stack([flatten(s, ["b", "w"]) for s in states]))
    monkeypatch.setenv("WTRAJ_READ_THREADS", "0")
    with pytest.raises(ValueError, match="WTRAJ_READ_THREADS"):
        dense(ck)


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_bfloat16_checkpoints_match_float64_truth_and_the_array(tmp_path, backend):
    import torch
    from safetensors.torch import save_file as save_torch_file

    # nearby checkpoints, as in training: steps of 1e-2 of the norm, which bfloat16 still resolves
    shapes = {"emb": (37, 300), "fc.weight": (50, 70), "fc.bias": (9,)}
    rng = np.random.default_rng(5)
    base = {k: rng.standard_normal(s) for k, s in shapes.items()}
    states = []
    for i in range(7):
        state = {
            k: torch.from_numpy(v + 1e-2 * i * rng.standard_normal(v.shape)).to(torch.bfloat16)
            for k, v in base.items()
        }
        save_torch_file(state, str(tmp_path / f"step{i}.safetensors"))
        states.append(state)
    ck = wtraj.open(tmp_path)
    assert ck.dtype == "bfloat16"
    names = [layer.name for layer in ck.layers]
    X = torch.stack([torch.cat([s[n].reshape(-1) for n in names]) for s in states])
    exact = X.double().numpy()
    stats = wtraj.trajectory_stats(ck, backend=backend)
    # the values are exact in float32: only the float32 tile sums round
    rtol = TOLERANCE[("euclidean", "bfloat16")]
    np.testing.assert_allclose(stats.distances, pairwise_truth(exact), rtol=rtol, atol=0)
    steps = np.linalg.norm(np.diff(exact, axis=0), axis=1)
    np.testing.assert_allclose(stats.step_norms, steps, rtol=TOLERANCE[("step_norm", "bfloat16")])
    # the in-memory bfloat16 tensor, cut differently, against the same truth
    in_memory = wtraj.trajectory_stats(X, backend=backend)
    np.testing.assert_allclose(in_memory.distances, pairwise_truth(exact), rtol=rtol, atol=0)
    by_layer = wtraj.trajectory_stats(ck, by_layer=True, backend=backend)
    for layer, place in zip(by_layer.layers.values(), ck.layers, strict=True):
        Xl = exact[:, place.offset : place.offset + place.size]
        np.testing.assert_allclose(layer.distances, pairwise_truth(Xl), rtol=rtol, atol=0)
