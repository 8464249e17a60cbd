"""trajectory_stats: one pass gives what the separate functions give; blocks and streams agree."""

import numpy as np
import pytest
from conftest import BACKENDS, HAS_CUDA, assert_close, random_walk, to_backend
from truth import menger_truth, pairwise_truth, turning_angle_truth

import wtraj
from wtraj._source import Block, Layer


@pytest.mark.parametrize("backend", BACKENDS)
def test_stats_match_the_truth(backend):
    n, d = (5, 3001) if backend == "triton" and not HAS_CUDA else (12, 20000)
    X = random_walk(n, d, 1e-5, np.float32, drift=True, seed=31)
    X64 = X.astype(np.float64)
    st = wtraj.trajectory_stats(to_backend(X, backend), backend=backend)
    assert_close(st.distances, pairwise_truth(X64), 1e-6, 1e-300, what="distances")
    assert_close(st.step_norms, np.linalg.norm(np.diff(X64, axis=0), axis=1), 1e-6)
    assert_close(np.cos(st.turning_angles), np.cos(turning_angle_truth(X64)), 0.0, atol=1e-6)
    assert_close(st.menger_curvature, menger_truth(X64), 1e-5)
    assert_close(st.norms, np.linalg.norm(X64, axis=1), 1e-12)
    assert st.distance_from_start.shape == (n,)
    assert st.path_length == pytest.approx(st.step_norms.sum())
    assert len(st.names) == n


def test_stats_of_a_single_checkpoint():
    st = wtraj.trajectory_stats(random_walk(1, 100, 1e-3))
    assert st.distances.shape == (1, 1) and st.step_norms.shape == (0,)
    assert st.turning_angles.shape == (0,) and st.menger_curvature.shape == (0,)


def test_by_layer_on_an_array_is_the_whole():
    X = random_walk(4, 5000, 1e-4, seed=32)
    st = wtraj.trajectory_stats(X, by_layer=True)
    assert len(st.layers) == 1
    (layer,) = st.layers.values()
    assert_close(layer.distances, st.distances, 1e-12)
    assert_close(layer.step_norms, st.step_norms, 1e-12)


class ChoppedSource:
    """A source that cuts its columns at odd, unaligned places and attributes them to layers."""

    def __init__(self, X, cuts):
        self.X = X
        self.n_checkpoints, self.n_params = X.shape
        self.dtype = str(X.dtype)
        self.device = "cpu"
        self.names = [f"ck{i}" for i in range(self.n_checkpoints)]
        edges = [0, *cuts, self.n_params]
        self.layers = [Layer(f"t{k}", (b - a,), a) for k, (a, b) in enumerate(zip(edges, edges[1:]))]

    def blocks(self, max_width, by_layer=False):
        # cut at the layers either way: without by_layer the engine re-cuts them onto the grid
        for index, layer in enumerate(self.layers):
            # a fresh buffer per block, like a reader that copies from files
            data = np.ascontiguousarray(self.X[:, layer.offset : layer.offset + layer.size])
            yield Block(data, 0, layer.size, layer.offset, index)

    def describe(self, row, column):
        return f"ck{row} column {column}"


def test_a_stream_of_blocks_gives_the_in_memory_result():
    X = random_walk(7, 30000, 1e-5, seed=33)
    source = ChoppedSource(X, [1, 1000, 1001, 17777])
    whole = wtraj.trajectory_stats(X)
    streamed = wtraj.trajectory_stats(source, by_layer=True)
    # cut off the 4096-column grid, the float32 tiles group other columns:
    # the distances then agree to the kernels' accuracy, the float64 path sums to 1e-12
    assert_close(streamed.distances, whole.distances, 1e-6, 1e-300)
    assert_close(streamed.step_norms, whole.step_norms, 1e-12)
    assert_close(streamed.turning_angles, whole.turning_angles, 1e-12)
    assert_close(streamed.menger_curvature, whole.menger_curvature, 1e-10)
    for layer, stats in zip(source.layers, streamed.layers.values()):
        part = X[:, layer.offset : layer.offset + layer.size].astype(np.float64)
        assert stats.name == layer.name
        assert_close(stats.distances, pairwise_truth(part), 1e-6, 1e-300)
        assert_close(stats.step_norms, np.linalg.norm(np.diff(part, axis=0), axis=1), 1e-12)
    # per-layer squared distances add up to the whole
    total = sum(s.distances**2 for s in streamed.layers.values())
    assert_close(total, whole.distances**2, 1e-6, 1e-300)


def test_tensor_cut_stream_equals_the_array_to_float64_rounding():
    # pairwise and stats without by_layer re-cut the stream on the column grid
    X = random_walk(7, 30000, 1e-6, seed=36)
    source = ChoppedSource(X, [1, 1000, 1001, 17777, 20480])
    assert_close(wtraj.pairwise(source), wtraj.pairwise(X), 1e-12, 1e-300)
    assert_close(wtraj.pairwise(source, memory_budget=3 * 8 * 7 * 8192), wtraj.pairwise(X), 1e-12, 1e-300)
    assert_close(wtraj.trajectory_stats(source).distances, wtraj.pairwise(X), 1e-12, 1e-300)


@pytest.mark.parametrize("call", ["step_norms", "curvature"])
def test_path_sums_add_up_over_many_blocks(call):
    # regression: the path-only pass once restarted its sums at every block
    X = random_walk(5, 3 * 4096 + 17, 1e-4, seed=37)
    budget = 3 * 8 * 5 * 4096
    expected = getattr(wtraj, call)(X, backend="reference", memory_budget=10**9)
    assert_close(getattr(wtraj, call)(X, memory_budget=budget), expected, 1e-9)
    assert_close(getattr(wtraj, call)(list(X), memory_budget=budget), expected, 1e-9)
    steps = np.linalg.norm(np.diff(X.astype(np.float64), axis=0), axis=1)
    assert_close(wtraj.step_norms(X, backend="reference", memory_budget=budget), steps, 1e-12)


def test_small_memory_budget_gives_the_same_result():
    X = random_walk(6, 50000, 1e-6, seed=34)
    whole = wtraj.pairwise(X)
    budget = 3 * 8 * 6 * 4096  # blocks of 4096 columns
    assert_close(wtraj.pairwise(X, memory_budget=budget), whole, 1e-12, 1e-300)
    assert_close(wtraj.pairwise(list(X), memory_budget="600kB"), whole, 1e-12, 1e-300)


def test_cross_pairs_between_differently_cut_sources():
    X = random_walk(8, 20000, 1e-5, seed=35)
    chopped = ChoppedSource(X[:3], [5, 4096, 9999])
    D = wtraj.pairwise(chopped, X[3:], memory_budget=3 * 8 * 8 * 4096)
    assert_close(D, pairwise_truth(X[:3], X[3:]), 1e-6, 1e-300)


def test_layers_by_name_and_compact_reprs(tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy", reason="layers come from checkpoint files")
    rng = np.random.default_rng(40)
    names = [f"block{i}.weight" for i in range(40)]
    paths = []
    for k in range(4):
        path = tmp_path / f"step{k}.safetensors"
        safetensors.save_file({n: rng.standard_normal((8, 9)).astype(np.float32) for n in names}, str(path))
        paths.append(path)
    st = wtraj.trajectory_stats(paths, by_layer=True)
    assert sorted(st.layers) == sorted(names)
    layer = st.layers["block7.weight"]
    assert layer.name == "block7.weight" and layer.shape == (8, 9)
    message = "no tensor named 'block7' among 40 layers; names containing it: block7.weight"
    with pytest.raises(KeyError, match=message):
        st.layers["block7"]
    # a few lines whatever the number of layers, not every array
    assert len(repr(st)) < 500 and "4 checkpoints" in repr(st) and "40 by name" in repr(st)
    assert len(repr(st.layers)) < 400 and "... 36 more" in repr(st.layers)
