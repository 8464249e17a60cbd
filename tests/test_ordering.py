"""order_checkpoints: training order and direction of shuffled checkpoints of real runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import RUNS, distances, run, shuffled, weights
from scipy.stats import kendalltau

import wtraj
from wtraj import toy
from wtraj.analysis._direction import (
    CLEAR_TREND_Z,
    mann_kendall,
    path_direction,
    segmented_trend_z,
    trend_z,
)
from wtraj.analysis.ordering import turn_end_segment


@pytest.mark.parametrize("name", sorted(RUNS))
def test_recovers_order_and_direction_of_real_runs(name):
    D, permutation = shuffled(distances(weights(name)), seed=1)
    order, confidence = wtraj.order_checkpoints(D, metric="precomputed", return_confidence=True)
    tau = kendalltau(permutation[order], np.arange(D.shape[0])).statistic
    # tau >= 0.99 with the right direction: at most one swapped neighbour pair in 26
    assert tau >= 0.99, f"{name}: tau {tau:.4f}, order {permutation[order]}"
    # right, and with the evidence agreeing (a disagreement caps the confidence at 0.6)
    assert 0.6 < confidence <= 1.0, f"{name}: confidence {confidence}"


def test_orders_data_directly_through_pairwise():
    X = weights("shift_invert")
    permutation = np.random.default_rng(3).permutation(X.shape[0])
    order = wtraj.order_checkpoints(X[permutation])
    np.testing.assert_array_equal(permutation[order], np.arange(X.shape[0]))


def test_orders_a_folder_of_checkpoint_files(tmp_path):
    # files are written in training order; reading them back must give that order
    toy.save_run(run("init1"), tmp_path / "run")
    order = wtraj.order_checkpoints(tmp_path / "run")
    np.testing.assert_array_equal(order, np.arange(26))


def test_same_input_same_result():
    D, _ = shuffled(distances(weights("cnn")), seed=5)
    first = wtraj.order_checkpoints(D, metric="precomputed")
    second = wtraj.order_checkpoints(D.copy(), metric="precomputed")
    np.testing.assert_array_equal(first, second)


def test_long_synthetic_trajectory_with_shrinking_steps():
    rng = np.random.default_rng(0)
    n, d = 400, 50
    drift = np.zeros(d)
    drift[0] = 1.0
    sizes = 1.0 / np.sqrt(1.0 + np.arange(n) / 20.0)
    steps = sizes[:, None] * (drift + 0.3 * rng.standard_normal((n, d)) / np.sqrt(d))
    X = np.cumsum(steps, axis=0)
    D, permutation = shuffled(distances(X), seed=2)
    order, confidence = wtraj.order_checkpoints(D, metric="precomputed", return_confidence=True)
    assert kendalltau(permutation[order], np.arange(n)).statistic >= 0.999
    assert confidence > 0.99


def test_duplicates_are_placed_next_to_each_other():
    X = weights("init0").astype(np.float64)
    # checkpoint 7 saved three times
    X = np.concatenate([X, X[[7, 7]]])
    order = wtraj.order_checkpoints(distances(X), metric="precomputed")
    position = {row: i for i, row in enumerate(order)}
    assert sorted(position[r] for r in (7, 26, 27)) == [position[7], position[7] + 1, position[7] + 2]
    assert [r for r in order if r < 26] == list(range(26))


def test_mann_kendall_counts_pairs():
    s, variance = mann_kendall(np.array([3.0, 2.0, 1.0]))
    assert s == -3 and variance == pytest.approx(3 * 2 * 11 / 18)
    # a jump starts a new phase: shrinking steps on both sides read as shrinking
    steps = np.log(np.array([4.0, 3.0, 2.0, 1.0, 40.0, 30.0, 20.0, 10.0]))
    assert segmented_trend_z(steps) < -2


@pytest.mark.parametrize("n", [3, 8, 31, 200])
def test_trend_z_matches_kendalls_tau(n):
    # without ties Mann-Kendall's S is Kendall's tau (scipy) times the number of pairs
    values = np.random.default_rng(n).standard_normal(n)
    values[: n // 2] += np.linspace(0.0, 3.0, n // 2)
    s, variance = mann_kendall(values)
    pairs = n * (n - 1) / 2
    tau = kendalltau(np.arange(n), values).statistic
    assert s == round(tau * pairs)
    assert variance == pytest.approx(n * (n - 1) * (2 * n + 5) / 18, rel=1e-15)
    expected = (s - np.sign(s)) / np.sqrt(variance)
    assert trend_z(s, variance) == pytest.approx(expected, rel=1e-14)


def test_trend_z_without_evidence_is_zero():
    assert trend_z(0, 10.0) == 0.0
    assert trend_z(*mann_kendall(np.ones(6))) == 0.0


def _on_a_line(steps) -> tuple[np.ndarray, np.ndarray]:
    """Distances of checkpoints on a line ``steps`` apart, and their path order."""
    position = np.concatenate([[0.0], np.cumsum(steps)])
    return np.abs(position[:, None] - position[None, :]), np.arange(position.shape[0])


def test_norms_decide_against_a_distance_that_cannot_tell_the_ends():
    # a run stopped during its warm-up: steps grow, then begin to shrink; the
    # distance rises slowly from either end and points backwards
    D, order = _on_a_line([1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5])
    without = path_direction(D, order)
    assert not without.forward and abs(without.z) < CLEAR_TREND_Z
    growing = np.linspace(1.0, 2.0, order.shape[0])
    direction = path_direction(D, order, growing)
    assert direction.forward and direction.norm_z >= CLEAR_TREND_Z
    # the distance disagrees: a low confidence
    assert 0.5 <= direction.confidence <= 0.6
    # the same checkpoints given the other way round
    assert not path_direction(D, order[::-1], growing).forward


def test_steps_that_clearly_shrink_side_with_the_distance_against_the_norms():
    # a fine-tune on noisy data: steps shrink, the norm falls
    D, order = _on_a_line(1.0 / np.sqrt(1.0 + np.arange(14.0)))
    falling = np.linspace(2.0, 1.0, order.shape[0])
    direction = path_direction(D, order, falling)
    assert direction.z <= -CLEAR_TREND_Z and direction.norm_z <= -CLEAR_TREND_Z
    assert direction.forward and 0.5 <= direction.confidence <= 0.6
    # every cue agreeing gives the confidence of the distance alone
    agreeing = path_direction(D, order, falling[::-1])
    assert agreeing.forward and agreeing.confidence == path_direction(D, order).confidence > 0.6


def test_precomputed_distances_take_the_norms_of_the_data():
    X = weights("cnn").astype(np.float64)
    X = X[np.random.default_rng(4).permutation(X.shape[0])]
    from_data = wtraj.order_checkpoints(X, return_confidence=True)
    norms = np.linalg.norm(X, axis=1)
    from_matrix = wtraj.order_checkpoints(
        distances(X), metric="precomputed", norms=norms, return_confidence=True
    )
    np.testing.assert_array_equal(from_data[0], from_matrix[0])
    assert from_data[1] == pytest.approx(from_matrix[1], abs=1e-6)
    with pytest.raises(ValueError, match="norms"):
        wtraj.order_checkpoints(X, norms=norms)
    with pytest.raises(ValueError, match="norms must hold one number per checkpoint"):
        wtraj.order_checkpoints(distances(X), metric="precomputed", norms=norms[:-1])


def _back_near_the_start() -> np.ndarray:
    """Checkpoints 0-5 on a line, then a jump to 6-9, a little nearer 0 than 5; norms grow along."""
    line = [[float(i), 0.0, 10.0] for i in range(6)]
    after_jump = [[2.4, y, 10.0] for y in (6.0, 7.0, 8.0, 8.8)]
    return np.array(line + after_jump)


def test_the_norms_join_the_checkpoints_after_a_jump_at_the_right_end():
    X = _back_near_the_start()
    D = distances(X)
    assert D[0, 6] < D[5, 6] and np.all(np.diff(np.linalg.norm(X, axis=1)) > 0)
    # from distances alone the path runs 9 .. 6 0 1 .. 5
    without = wtraj.order_checkpoints(D, metric="precomputed")
    assert list(without) == [9, 8, 7, 6, 0, 1, 2, 3, 4, 5]
    turned = turn_end_segment(D, np.linalg.norm(X, axis=1), without)
    # the path up to its direction, which path_direction decides
    assert list(turned) in (list(range(10)), list(range(9, -1, -1)))
    for seed in range(3):
        permutation = np.random.default_rng(seed).permutation(10)
        order = wtraj.order_checkpoints(X[permutation])
        np.testing.assert_array_equal(permutation[order], np.arange(10))


def test_turn_end_segment_keeps_an_order_whose_norms_join_smoothly():
    X = _back_near_the_start()
    D, norms = distances(X), np.linalg.norm(X, axis=1)
    order = np.arange(10)
    assert turn_end_segment(D, norms, order) is order
    # three checkpoints have no end segment to turn
    three = np.array([2, 0, 1])
    assert turn_end_segment(D[:3, :3], norms[:3], three) is three


# runs of the evaluation zoo (seed set 0) that distances alone turned backwards
ZOO_BACKWARDS = {
    "s0/digits-mlp-sgd-warmup_cosine-every_k-early_stop-a": "stopped during its warm-up",
    "s0/digits-mlp-adam-constant-epoch-finetune-a": "an Adam fine-tune of a converged model",
}


@pytest.fixture(scope="module")
def zoo_backwards() -> dict:
    """The runs of ``ZOO_BACKWARDS``, retrained as ``bench/zoo.py`` trains them (deterministic, ~2 s)."""
    zoo_training = pytest.importorskip("zoo_training")
    from zoo_catalogue import catalogue

    specs = {spec["id"]: spec for spec in catalogue(0)}
    runs = {}
    for run_id in ZOO_BACKWARDS:
        config = specs[run_id]["config"]
        start = None
        if config["start"] is not None:
            parent = zoo_training.train(specs[config["start"]["run"]]["config"])
            start = parent.weights[config["start"]["row"]]
        runs[run_id] = zoo_training.train(config, start).weights
    return runs


@pytest.mark.parametrize("run_id", sorted(ZOO_BACKWARDS))
def test_zoo_runs_the_distance_turned_backwards(zoo_backwards, run_id):
    X = zoo_backwards[run_id]
    # the shuffle of bench/analysis_quality.py
    permutation = np.random.default_rng(X.shape[0]).permutation(X.shape[0])
    order, confidence = wtraj.order_checkpoints(X[permutation], return_confidence=True)
    tau = kendalltau(permutation[order], np.arange(X.shape[0])).statistic
    assert tau >= 0.99, (ZOO_BACKWARDS[run_id], tau, confidence)
    # the norms decided against the distance: a low confidence
    assert 0.5 <= confidence <= 0.6, (ZOO_BACKWARDS[run_id], confidence)


@pytest.mark.parametrize(
    "D, message",
    [
        (np.zeros((3, 4)), "square"),
        (np.array([[0.0, 1.0, 2.0], [1.5, 0.0, 1.0], [2.0, 1.0, 0.0]]), "symmetric"),
        (np.array([[0.0, np.nan, 2.0], [np.nan, 0.0, 1.0], [2.0, 1.0, 0.0]]), "non-finite"),
        (np.array([[0.0, -1.0, 2.0], [-1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]), "negative"),
        (np.array([[1.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]), "diagonal"),
    ],
    ids=["not-square", "not-symmetric", "nan", "negative", "diagonal"],
)
def test_bad_distance_matrix(D, message):
    with pytest.raises(ValueError, match=message):
        wtraj.order_checkpoints(D, metric="precomputed")


@pytest.mark.parametrize(
    "where, value, message",
    [
        ((1030, 517), "mirror", r"not symmetric: \[517, 1030\]"),
        ((3, 1100), np.inf, r"non-finite distance inf at \[3, 1100\]"),
        ((1099, 2), -0.5, r"negative distance -0.5 at \[1099, 2\]"),
    ],
    ids=["asymmetric-tile", "inf-last-column", "negative-last-row"],
)
def test_bad_entries_are_found_in_any_tile(where, value, message):
    # the checks run a tile at a time: an entry far from the first tile is still named
    from scipy.spatial.distance import cdist

    X = np.random.default_rng(0).standard_normal((1101, 3))
    D = cdist(X, X)
    D[where] = D[where] + 1.0 if value == "mirror" else value
    with pytest.raises(ValueError, match=message):
        wtraj.order_checkpoints(D, metric="precomputed")


def test_too_few_distinct_checkpoints():
    X = np.ones((5, 10), dtype=np.float32)
    X[3:] = 2.0
    with pytest.raises(ValueError, match="at least 3 distinct checkpoints; got 5"):
        wtraj.order_checkpoints(X)


def test_bad_arguments():
    D = distances(weights("init0")[:5])
    with pytest.raises(ValueError, match="window"):
        wtraj.order_checkpoints(D, metric="precomputed", window=0)
    with pytest.raises(TypeError, match="NumPy array of distances"):
        wtraj.order_checkpoints(D.tolist(), metric="precomputed")
    with pytest.raises(TypeError, match="metric"):
        wtraj.order_checkpoints(D, metric=None)


# a held-out run of the zoo (bench/zoo.py, seed set 0,
# sequence-gru-sgd_momentum-warmup_cosine-every_k-finetune-a): a GRU fine-tuned on noisy sequences,
# its 40 checkpoints as coordinates in an orthonormal basis of their span (np.linalg.qr of the
# weights' transpose), so distances and norms are the weights' own to 2e-14
CURLING_BACK = Path(__file__).parent / "data" / "gru_fine_tune_curling_back.npy"


# before a refinement that turned an end segment back was refused, its last 10 checkpoints came
# out reversed (tau 0.890) with confidence 1.000, in every shuffle
@pytest.mark.parametrize("seed", [0, 1, 40])
def test_a_run_curling_back_at_its_end_keeps_its_last_checkpoints_in_order(seed):
    X = np.load(CURLING_BACK)
    permutation = np.random.default_rng(seed).permutation(X.shape[0])
    order = wtraj.order_checkpoints(X[permutation])
    assert kendalltau(permutation[order], np.arange(X.shape[0])).statistic >= 0.99
