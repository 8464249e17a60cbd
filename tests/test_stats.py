"""trajectory_stats: one pass gives what the separate functions give; blocks and streams agree."""

import numpy as np
import pytest
from conftest import BACKENDS, HAS_CUDA, TOLERANCE, assert_close, random_walk, to_backend
from truth import menger_truth, pairwise_truth, turning_angle_truth

import wtraj
from wtraj._blocks import Block, Layer


def _check_stats(st, X64):
    """Every field of a TrajectoryStats of float32 input against the float64 truth."""
    rtol = TOLERANCE[("euclidean", "float32")]
    assert_close(st.distances, pairwise_truth(X64), rtol, 1e-300, what="distances")
    steps = np.linalg.norm(np.diff(X64, axis=0), axis=1)
    assert_close(st.step_norms, steps, TOLERANCE[("step_norm", "float32")], what="step norms")
    assert_close(st.turning_angles, turning_angle_truth(X64), TOLERANCE[("angle", "float32")], what="angles")
    assert_close(st.menger_curvature, menger_truth(X64), TOLERANCE[("menger", "float32")], what="Menger")
    assert_close(st.norms, np.linalg.norm(X64, axis=1), TOLERANCE[("step_norm", "float32")], what="norms")


@pytest.mark.parametrize("backend", BACKENDS)
def test_stats_match_the_truth(backend):
    n, d = (5, 3001) if backend == "triton" and not HAS_CUDA else (12, 20000)
    X = random_walk(n, d, 1e-5, np.float32, drift=True, seed=31)
    st = wtraj.trajectory_stats(to_backend(X, backend), backend=backend)
    _check_stats(st, X.astype(np.float64))
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
    X64 = X.astype(np.float64)
    assert_close(layer.distances, pairwise_truth(X64), TOLERANCE[("euclidean", "float32")], 1e-300)
    steps = np.linalg.norm(np.diff(X64, axis=0), axis=1)
    assert_close(layer.step_norms, steps, TOLERANCE[("step_norm", "float32")])


class ChoppedSource:
    """A source that cuts its columns at odd, unaligned places and attributes them to layers."""

    check_finite = True
    memory_budget = None

    def __init__(self, X, cuts):
        self.X = X
        self.n_checkpoints, self.n_params = X.shape
        self.dtype = str(X.dtype)
        self.device = "cpu"
        self.names = [f"ck{i}" for i in range(self.n_checkpoints)]
        edges = [0, *cuts, self.n_params]
        self.layers = [Layer(f"t{k}", (b - a,), a) for k, (a, b) in enumerate(zip(edges, edges[1:]))]
        self.stored_bytes_per_column = [self.n_checkpoints * X.itemsize] * len(self.layers)
        # a fresh buffer per block
        self.buffer_bytes_per_column = self.n_checkpoints * X.itemsize

    def blocks(self, max_width, by_layer=False, columns=None):
        assert columns is None, "this source covers all its columns"
        # cut at the layers either way: without by_layer the pass re-cuts them onto the grid
        for index, layer in enumerate(self.layers):
            # a fresh buffer per block, like a reader that copies from files
            data = np.ascontiguousarray(self.X[:, layer.offset : layer.offset + layer.size])
            yield Block(data, 0, layer.size, layer.offset, index)

    def describe(self, row, column):
        return f"ck{row} column {column}"


def test_a_stream_of_blocks_matches_the_truth():
    X = random_walk(7, 30000, 1e-5, seed=33)
    X64 = X.astype(np.float64)
    source = ChoppedSource(X, [1, 1000, 1001, 17777])
    streamed = wtraj.trajectory_stats(source, by_layer=True)
    # cut off the 4096-column grid, the float32 tiles group other columns: as accurate
    _check_stats(streamed, X64)
    for layer, stats in zip(source.layers, streamed.layers.values()):
        part = X64[:, layer.offset : layer.offset + layer.size]
        assert stats.name == layer.name
        assert_close(stats.distances, pairwise_truth(part), TOLERANCE[("euclidean", "float32")], 1e-300)
        steps = np.linalg.norm(np.diff(part, axis=0), axis=1)
        assert_close(stats.step_norms, steps, TOLERANCE[("step_norm", "float32")])
        assert_close(stats.norms, np.linalg.norm(part, axis=1), TOLERANCE[("step_norm", "float32")])


def test_tensor_cut_streams_match_the_truth():
    # pairwise and stats without by_layer re-cut the stream on the column grid
    X = random_walk(7, 30000, 1e-6, seed=36)
    truth = pairwise_truth(X)
    rtol = TOLERANCE[("euclidean", "float32")]
    source = ChoppedSource(X, [1, 1000, 1001, 17777, 20480])
    assert_close(wtraj.pairwise(source), truth, rtol, 1e-300)
    assert_close(wtraj.pairwise(source, memory_budget=7 * 4 * 8192), truth, rtol, 1e-300)
    assert_close(wtraj.trajectory_stats(source).distances, truth, rtol, 1e-300)
    for metric in ("cosine", "inner", "cityblock"):
        expected = pairwise_truth(X, None, metric)
        assert_close(wtraj.pairwise(source, metric=metric), expected, TOLERANCE[(metric, "float32")], 1e-300)


@pytest.mark.parametrize("call", ["step_norms", "curvature"])
def test_path_sums_add_up_over_many_blocks(call):
    # regression: the path-only pass once restarted its sums at every block
    X = random_walk(5, 3 * 4096 + 17, 1e-4, seed=37)
    X64 = X.astype(np.float64)
    # blocks of 4096 columns: one float32 buffer of 5 rows for a list of rows or a
    # non-contiguous array (a contiguous one is read in place, in cache-sized blocks)
    budget = 5 * 4 * 4096
    if call == "step_norms":
        expected, rtol = np.linalg.norm(np.diff(X64, axis=0), axis=1), TOLERANCE[("step_norm", "float32")]
    else:
        expected, rtol = turning_angle_truth(X64), TOLERANCE[("angle", "float32")]
    for backend in ("reference", "numba"):
        for data in (np.asfortranarray(X), list(X)):
            assert_close(getattr(wtraj, call)(data, memory_budget=budget, backend=backend), expected, rtol)


def test_small_memory_budget_matches_the_truth():
    X = random_walk(6, 50000, 1e-6, seed=34)
    truth = pairwise_truth(X)
    rtol = TOLERANCE[("euclidean", "float32")]
    budget = 6 * 4 * 4096  # blocks of 4096 columns of a copied (non-contiguous) array
    assert_close(wtraj.pairwise(np.asfortranarray(X), memory_budget=budget), truth, rtol, 1e-300)
    assert_close(wtraj.pairwise(list(X), memory_budget="600kB"), truth, rtol, 1e-300)


def test_cross_pairs_between_differently_cut_sources():
    X = random_walk(8, 20000, 1e-5, seed=35)
    chopped = ChoppedSource(X[:3], [5, 4096, 9999])
    D = wtraj.pairwise(chopped, X[3:], memory_budget=3 * 4 * 4096)
    assert_close(D, pairwise_truth(X[:3], X[3:]), TOLERANCE[("euclidean", "float32")], 1e-300)


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


def test_by_layer_sums_out_of_float32_range_match_the_truth():
    # rows 0 and 1 differ by ~1e-23: their squares underflow float32 tiles in every layer
    rng = np.random.default_rng(38)
    X = rng.standard_normal((4, 9000)) * 1e-20
    X[1] = X[0] + 1e-23 * rng.standard_normal(9000)
    X = X.astype(np.float32)
    source = ChoppedSource(X, [10, 4096, 5000])
    st = wtraj.trajectory_stats(source, by_layer=True)
    rtol = TOLERANCE[("euclidean", "float32")]
    assert_close(st.distances, pairwise_truth(X), rtol, 1e-300)
    for layer, stats in zip(source.layers, st.layers.values()):
        part = X[:, layer.offset : layer.offset + layer.size]
        assert_close(stats.distances, pairwise_truth(part), rtol, 1e-300, what=layer.name)
