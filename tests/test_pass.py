"""The pass: one owner of the memory budget, progress bar and finite check; column subsets; splits."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from checkpoints_fixtures import flatten, make_state
from conftest import TOLERANCE, assert_close, random_walk
from safetensors.numpy import save_file
from truth import pairwise_truth

import wtraj
from wtraj._blocks import COLUMN_ALIGN, ColumnCost
from wtraj._engine import load_backend
from wtraj._pass import MIN_STREAM_WIDTH, STREAM_BUFFER_BYTES, Pass
from wtraj._source import as_source
from wtraj._split import split_columns
from wtraj.kernels.contract import PathSum


def write_run(folder, shapes, n, dtype=np.float32):
    states = [make_state(i, dtype, shapes) for i in range(n)]
    for i, state in enumerate(states):
        save_file(state, str(folder / f"epoch{i}.safetensors"))
    return states


@pytest.mark.parametrize("budget", [1 << 20, 3 << 20, 8 << 20])
def test_measured_buffer_bytes_follow_the_budget(tmp_path, budget):
    # 8 checkpoints of 200k float32: 6.4 MB of values; the budget binds below it
    write_run(tmp_path, {"a": (150_000,), "b": (50_000,)}, 8)
    ck = wtraj.open(tmp_path)
    assert ck.buffer_bytes_per_column == 8 * 2 * 4
    kernels = load_backend("numba")
    Pass(ck, kernels).run(steps=True)  # compile first
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        Pass(ck, kernels, memory_budget=budget).run(steps=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    values = ck.n_checkpoints * ck.n_params * 4
    # two float32 buffers of the width the budget allows (whole grid blocks, never wider than the data)
    width = min(budget // ck.buffer_bytes_per_column // COLUMN_ALIGN * COLUMN_ALIGN, ck.n_params)
    buffers = width * ck.buffer_bytes_per_column
    assert buffers <= budget
    assert buffers >= min(0.9 * budget, 2 * values - 2 * COLUMN_ALIGN * 32)
    assert buffers <= peak <= buffers + (256 << 10), f"peak {peak} for buffers of {buffers} bytes"


def test_the_callers_budget_is_honoured_by_path_sources(tmp_path):
    write_run(tmp_path, {"w": (5000,)}, 8)
    kernels = load_backend("numba")
    # the path is opened without a budget of its own: the call's applies (below the streaming size)
    source = as_source(str(tmp_path))
    for budget, expected in (("8MiB", 8 << 20), ("1MiB", 1 << 20)):
        width = Pass(source, kernels, memory_budget=budget).width
        assert expected - COLUMN_ALIGN * 64 < width * source.buffer_bytes_per_column <= expected
    # a budget given to wtraj.open is the default of passes over it, and a call's budget wins
    opened = wtraj.open(tmp_path, memory_budget="1MiB")
    assert Pass(opened, kernels).width * opened.buffer_bytes_per_column <= 1 << 20
    wide = Pass(source, kernels, memory_budget="4MiB").width
    assert Pass(opened, kernels, memory_budget="4MiB").width == wide > Pass(opened, kernels).width


class WideSource:
    """What the pass reads of a source to pick its block width: buffers of ``n_checkpoints`` float32 rows."""

    check_finite = True
    memory_budget = None
    n_params = 1 << 30

    def __init__(self, n_checkpoints):
        self.n_checkpoints = n_checkpoints
        self.buffer_bytes_per_column = 2 * 4 * n_checkpoints


@pytest.mark.parametrize("n", [16, 1000])
def test_a_large_budget_is_a_ceiling_not_the_block_size(n):
    kernels = load_backend("numba")
    source = WideSource(n)
    width = Pass(source, kernels, memory_budget="64GiB").width
    assert width % COLUMN_ALIGN == 0
    if n * 2 * 4 * MIN_STREAM_WIDTH <= STREAM_BUFFER_BYTES:
        # few checkpoints: buffers of the streaming size, not of the budget
        assert (
            STREAM_BUFFER_BYTES - COLUMN_ALIGN * source.buffer_bytes_per_column
            < (width * source.buffer_bytes_per_column)
            <= STREAM_BUFFER_BYTES
        )
    else:
        # many: each row's reads stay MIN_STREAM_WIDTH long while the budget allows
        assert width == MIN_STREAM_WIDTH
        small = Pass(source, kernels, memory_budget=MIN_STREAM_WIDTH * source.buffer_bytes_per_column // 2)
        assert small.width == MIN_STREAM_WIDTH // 2


def test_a_budget_below_one_block_warns_and_says_what_it_uses(tmp_path):
    write_run(tmp_path, {"w": (3 * COLUMN_ALIGN,)}, 4)
    ck = wtraj.open(tmp_path)
    message = f"smallest block: {COLUMN_ALIGN} columns .* take {COLUMN_ALIGN * 32} bytes"
    with pytest.warns(RuntimeWarning, match=message):
        D = wtraj.pairwise(ck, memory_budget=1000)
    X = np.stack([flatten(make_state(i, np.float32, {"w": (3 * COLUMN_ALIGN,)}), ["w"]) for i in range(4)])
    assert_close(D, pairwise_truth(X), TOLERANCE[("euclidean", "float32")], 1e-300)


def test_an_array_read_in_place_needs_no_budget():
    X = random_walk(4, 10_000, 1e-3)
    assert as_source(X).buffer_bytes_per_column == 0
    assert as_source(np.asfortranarray(X)).buffer_bytes_per_column == 4 * 4
    assert as_source(list(X)).buffer_bytes_per_column == 4 * 4


class _RecordingKernels:
    """The Numba kernels, recording the width of every block a pass gives them."""

    def __init__(self):
        self.kernels = load_backend("numba")
        self.widths = []

    def __getattr__(self, name):
        return getattr(self.kernels, name)

    def pairwise_block(self, x, start, stop, *rest):
        self.widths.append(stop - start)
        return self.kernels.pairwise_block(x, start, stop, *rest)

    def steps_block(self, x, start, stop, *rest):
        self.widths.append(stop - start)
        return self.kernels.steps_block(x, start, stop, *rest)


def test_arrays_in_memory_are_cut_to_the_cache_only_where_two_kernels_read_a_block():
    from wtraj._blocks import CACHE_BLOCK_BYTES, VIEW_BLOCK_BYTES

    n = 4
    X = random_walk(n, (VIEW_BLOCK_BYTES // (4 * n)) + 5 * COLUMN_ALIGN, 1e-3)
    view_width = VIEW_BLOCK_BYTES // (4 * n)
    cache_width = CACHE_BLOCK_BYTES // (4 * n)
    for asked, widest in [
        ({"pair_op": "sqdiff"}, view_width),
        ({"steps": True}, view_width),
        # the pairs, then the path sums: the block should still be in the cache
        ({"pair_op": "sqdiff", "steps": True}, cache_width),
    ]:
        kernels = _RecordingKernels()
        sums = Pass(as_source(X), kernels).run(**asked)
        assert max(kernels.widths) == widest, asked
        # every column once per kernel (the Numba kernels sum the path on the pairs' tiles)
        assert sum(kernels.widths) == X.shape[1]
        if "steps" in asked:
            steps = np.sum(np.diff(X.astype(np.float64), axis=0) ** 2, axis=1)
            assert_close(sums.steps[PathSum.STEP2, :-1], steps, 1e-14, 0)
    # a copy (float16 widened to float32 as it is copied) is read twice: cache-sized blocks
    kernels = _RecordingKernels()
    Pass(as_source(X[:, : 3 * cache_width].astype(np.float16)), kernels).run(steps=True)
    assert max(kernels.widths) == CACHE_BLOCK_BYTES // (2 * n)


def test_check_finite_is_part_of_the_source(tmp_path):
    states = write_run(tmp_path, {"w": (100,)}, 3)
    states[1]["w"][7] = np.nan
    save_file(states[1], str(tmp_path / "epoch1.safetensors"))
    assert as_source(random_walk(2, 10)).check_finite
    with pytest.raises(ValueError, match="tensor 'w' at index \\(7,\\)"):
        wtraj.step_norms(wtraj.open(tmp_path))
    assert np.isnan(wtraj.step_norms(wtraj.open(tmp_path, check_finite=False))).all()


@pytest.mark.parametrize("by_layer", [False, True])
def test_a_pass_over_some_columns_is_the_pass_over_those_columns(tmp_path, by_layer):
    shapes = {"a": (3 * COLUMN_ALIGN + 5,), "b": (7,), "c": (2 * COLUMN_ALIGN + 100,)}
    states = write_run(tmp_path, shapes, 5)
    ck = wtraj.open(tmp_path)
    X = np.stack([flatten(s, [layer.name for layer in ck.layers]) for s in states])
    kernels = load_backend("numba")
    columns = ((COLUMN_ALIGN, 2 * COLUMN_ALIGN), (3 * COLUMN_ALIGN, 4 * COLUMN_ALIGN + 13))
    sums = Pass(ck, kernels, columns=columns, by_layer=by_layer).run(pair_op="sqdiff", steps=True)
    part = np.concatenate([X[:, lo:hi] for lo, hi in columns], axis=1)
    expected = pairwise_truth(part) ** 2
    upper = np.triu_indices(5, 1)
    assert_close(sums.pairs[upper], expected[upper], 3e-7)
    assert_close(sums.steps[0], (part**2).sum(axis=1), 1e-14)
    # the array source covers the same columns
    array_sums = Pass(as_source(X.astype(np.float32)), kernels, columns=columns).run(steps=True)
    assert_close(array_sums.steps, sums.steps, 1e-14)


@pytest.mark.parametrize("by_layer", [False, True])
@pytest.mark.parametrize("n_ranks", [1, 2, 3, 4, 9])
def test_splits_cover_every_column_once_on_the_grid(tmp_path, by_layer, n_ranks):
    shapes = {"emb": (5 * COLUMN_ALIGN + 11,), "b": (3,), "w": (3 * COLUMN_ALIGN,), "c": (70,)}
    write_run(tmp_path, shapes, 3)
    ck = wtraj.open(tmp_path)
    parts = split_columns(ck, n_ranks, by_layer)
    assert len(parts) == n_ranks
    ranges = [r for part in parts for r in part]
    assert all(len(part) <= 1 for part in parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == ck.n_params
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    starts = {layer.offset for layer in ck.layers}
    for lo, _ in ranges:
        if by_layer:
            layer = max((layer for layer in ck.layers if layer.offset <= lo), key=lambda t: t.offset)
            assert lo in starts or (lo - layer.offset) % COLUMN_ALIGN == 0
        else:
            assert lo % COLUMN_ALIGN == 0
    cost = ColumnCost(ck)
    share = cost.upto(ck.n_params) / n_ranks
    # balanced to within a grid block (or a snapped tensor) of bytes
    slack = max(COLUMN_ALIGN * 3 * 4, 0.25 * share) if by_layer else COLUMN_ALIGN * 3 * 4
    for part in parts:
        got = sum(cost.between(lo, hi) for lo, hi in part)
        assert abs(got - share) <= slack + 1


def test_progress_bar_only_when_asked(tmp_path, capsys):
    write_run(tmp_path, {"w": (4 * COLUMN_ALIGN,)}, 2)
    ck = wtraj.open(tmp_path)
    wtraj.step_norms(ck)
    assert capsys.readouterr().err == ""
    wtraj.step_norms(ck, progress=True)
    assert "wtraj: 2 checkpoints" in capsys.readouterr().err


def test_no_import_cycle_and_no_torch():
    # the leaf module imports nothing of wtraj; checkpoints import it, not the array sources
    code = (
        "import sys, wtraj._blocks as b; assert not [m for m in sys.modules if m.startswith('wtraj.')"
        " and m != 'wtraj._blocks'], sorted(sys.modules);"
        "import wtraj.checkpoints; assert 'wtraj._source' not in sys.modules;"
        "import wtraj, wtraj.distances, wtraj.stats, wtraj.path; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("by_layer", [False, True])
def test_a_rank_reads_only_the_bytes_of_its_columns(tmp_path, monkeypatch, by_layer):
    import os

    write_run(tmp_path, {"a": (3 * COLUMN_ALIGN + 5,), "b": (7,), "c": (2 * COLUMN_ALIGN + 100,)}, 3)
    ck = wtraj.open(tmp_path)
    read = []
    real_preadv = os.preadv

    def recording_preadv(fd, buffers, offset):
        n = real_preadv(fd, buffers, offset)
        read.append(n)
        return n

    monkeypatch.setattr(os, "preadv", recording_preadv)
    cost = ColumnCost(ck)
    for columns in split_columns(ck, 2, by_layer):
        read.clear()
        Pass(ck, load_backend("numba"), columns=columns, by_layer=by_layer).run(steps=True)
        assert sum(read) == sum(cost.between(lo, hi) for lo, hi in columns) > 0


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("n, size", [(1, 2), (3, 4), (7, 2), (7, 4), (50, 3)])
def test_pair_tiles_cover_every_pair_once(n, size, symmetric):
    from wtraj._pair_tiles import tile_pairs

    m = n if symmetric else n + 2
    covered = np.zeros((n, m), dtype=int)
    tiles = tile_pairs(n, m, symmetric, size)
    for (a0, a1), (b0, b1) in tiles:
        assert a0 < a1 and b0 < b1
        block = covered[a0:a1, b0:b1]
        if symmetric and a0 == b0:
            block[np.triu_indices(a1 - a0, 1)] += 1
        else:
            block += 1
    needed = np.triu(np.ones((n, m), dtype=int), 1) if symmetric else np.ones((n, m), dtype=int)
    np.testing.assert_array_equal(covered, needed)
    # enough tiles for every rank when there are enough rows
    assert len(tiles) >= min(size, n * (n + 1) // 2 if symmetric else n * m)


def test_a_row_range_of_checkpoints_reads_only_their_files(tmp_path):
    write_run(tmp_path, {"w": (2 * COLUMN_ALIGN,)}, 5)
    ck = wtraj.open(tmp_path)
    part = ck.rows_between(1, 3)
    assert part.names == ck.names[1:3] and part.dtype == ck.dtype
    files = {str(t.file) for row in part._tensors for t in row}
    assert files == {str(tmp_path / f"epoch{i}.safetensors") for i in (1, 2)}
    X = np.stack([flatten(make_state(i, np.float32, {"w": (2 * COLUMN_ALIGN,)}), ["w"]) for i in range(5)])
    assert_close(wtraj.pairwise(part), pairwise_truth(X[1:3]), TOLERANCE[("euclidean", "float32")], 1e-300)


# the Numba backend loaded on a thread while the first blocks are read


@pytest.mark.parametrize("by_layer", [False, True])
def test_kernels_loaded_on_a_thread_give_the_same_sums(tmp_path, by_layer):
    from wtraj._engine import PendingBackend

    write_run(tmp_path, {"a": (3 * COLUMN_ALIGN + 5,), "b": (7,), "c": (2 * COLUMN_ALIGN + 100,)}, 5)
    ck = wtraj.open(tmp_path)
    loaded = Pass(ck, load_backend("numba"), by_layer=by_layer).run(pair_op="sqdiff", steps=True)
    pending = Pass(ck, PendingBackend("numba"), by_layer=by_layer)
    sums = pending.run(pair_op="sqdiff", steps=True)
    np.testing.assert_array_equal(sums.pairs, loaded.pairs)
    np.testing.assert_array_equal(sums.steps, loaded.steps)
    if by_layer:
        np.testing.assert_array_equal(sums.layer_pairs, loaded.layer_pairs)
    # the pass keeps the loaded package for its next runs
    assert pending.kernels is load_backend("numba")


def test_prepare_defers_numba_only_for_sources_that_read_from_disk(tmp_path):
    from wtraj._engine import PendingBackend, prepare

    write_run(tmp_path, {"a": (10,)}, 2)
    assert isinstance(prepare(wtraj.open(tmp_path))[2], PendingBackend)
    assert not isinstance(prepare(np.zeros((2, 10), np.float32))[2], PendingBackend)
    assert not isinstance(prepare(wtraj.open(tmp_path), backend="reference")[2], PendingBackend)


def test_the_first_block_is_read_while_the_kernels_load(tmp_path, monkeypatch):
    import os
    import threading

    from wtraj._engine import PendingBackend

    write_run(tmp_path, {"a": (2 * COLUMN_ALIGN,)}, 3)
    ck = wtraj.open(tmp_path)
    reading = threading.Event()
    real_preadv = os.preadv

    def recording_preadv(fd, buffers, offset):
        reading.set()
        return real_preadv(fd, buffers, offset)

    class SlowToLoad(PendingBackend):
        def load(self):
            # a pass that loaded the kernels before reading would wait here in vain
            assert reading.wait(30), "no block was read while the kernels loaded"
            return super().load()

    monkeypatch.setattr(os, "preadv", recording_preadv)
    sums = Pass(ck, SlowToLoad("numba")).run(steps=True)
    assert sums.steps.shape[1] == 3


def test_a_read_error_while_the_kernels_load_names_the_file_and_leaves_no_thread(tmp_path):
    import threading

    from wtraj._engine import PendingBackend

    write_run(tmp_path, {"a": (4 * COLUMN_ALIGN,)}, 3)
    ck = wtraj.open(tmp_path)
    damaged = tmp_path / "epoch1.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    with pytest.raises(Exception, match="epoch1.safetensors"):
        Pass(ck, PendingBackend("numba")).run(pair_op="sqdiff", steps=True)
    assert not [t for t in threading.enumerate() if t.name.startswith("wtraj-kernels")]


def test_a_backend_that_cannot_load_raises_from_the_pass(tmp_path):
    from wtraj._engine import PendingBackend

    class Missing(PendingBackend):
        def load(self):
            raise ImportError("backend='numba' is not available: no module named 'numba'.")

    write_run(tmp_path, {"a": (10,)}, 2)
    with pytest.raises(ImportError, match="not available"):
        Pass(wtraj.open(tmp_path), Missing("numba")).run(steps=True)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_kernels_loaded_on_a_thread_for_arrays_the_pass_widens(dtype):
    # a float16 array is read into float32 buffers: the pass's own dtype, not the array's
    from wtraj._engine import PendingBackend, prepare

    X = np.random.default_rng(0).standard_normal((4, 3 * COLUMN_ALIGN + 7)).astype(dtype)
    source, _, kernels, _ = prepare(X)
    assert isinstance(kernels, PendingBackend) == (dtype == np.float16)
    loaded = Pass(source, load_backend("numba")).run(pair_op="sqdiff", steps=True)
    sums = Pass(source, PendingBackend("numba")).run(pair_op="sqdiff", steps=True)
    np.testing.assert_array_equal(sums.pairs, loaded.pairs)
    np.testing.assert_array_equal(sums.steps, loaded.steps)


@pytest.mark.parametrize("stored", ["float32", "bfloat16", "float16-array"])
def test_the_kernels_first_calls_take_blocks_of_the_pass_s_own_dtype(tmp_path, monkeypatch, stored):
    # the calls made while the kernels load must have the argument types of the pass's
    # calls, or the pass would load (or compile) its kernels again
    import threading

    import torch
    from safetensors.torch import save_file as save_torch_file

    from wtraj._engine import PendingBackend, prepare
    from wtraj._pass import _BlockOps

    if stored == "float16-array":
        X = np.random.default_rng(0).standard_normal((3, 2 * COLUMN_ALIGN)).astype(np.float16)
    else:
        for i in range(3):
            state = {"w": torch.randn(2 * COLUMN_ALIGN, dtype=torch.float32).to(getattr(torch, stored))}
            save_torch_file(state, str(tmp_path / f"step{i}.safetensors"))
        X = wtraj.open(tmp_path)
    calls = []
    real_add = _BlockOps.add

    def recording_add(self, kernels, x_block, *args):
        calls.append((threading.current_thread() is threading.main_thread(), x_block.data.dtype))
        return real_add(self, kernels, x_block, *args)

    monkeypatch.setattr(_BlockOps, "add", recording_add)
    source, _, kernels, _ = prepare(X)
    assert isinstance(kernels, PendingBackend)
    Pass(source, kernels).run(pair_op="sqdiff", steps=True)
    warm_up = [dtype for main, dtype in calls if not main]
    passes = {dtype for main, dtype in calls if main}
    assert len(warm_up) == 1 and passes == set(warm_up)


def test_arrays_and_tensors_are_no_sources_and_checkpoint_sets_are(tmp_path):
    import torch

    from wtraj._source import as_source, is_source

    X = random_walk(3, 100, 1).astype(np.float32)
    assert not is_source(X) and not is_source(torch.from_numpy(X)) and not is_source([X[0], X[1]])
    assert is_source(as_source(X))
    for i in range(2):
        save_file({"w": X[i]}, str(tmp_path / f"{i}.safetensors"))
    checkpoints = wtraj.open(sorted(tmp_path.glob("*.safetensors")))
    assert is_source(checkpoints) and as_source(checkpoints) is checkpoints
