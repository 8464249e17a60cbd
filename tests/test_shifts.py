"""detect_shifts on real runs: data shifts found, ordinary training and learning-rate steps not flagged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from analysis_fixtures import LR_STEP_AT, NO_SHIFT, SHIFT_AT, distances, shuffled, stack, weights

import wtraj
from wtraj.analysis.shifts import ShiftEvent, run_events, turning_angle


def events_in_time(name, seed=0):
    """Events of one shuffled run, with indices mapped back to epochs."""
    D, permutation = shuffled(distances(weights(name)), seed)
    events = wtraj.detect_shifts(D, metric="precomputed")
    return [(int(permutation[e.index]), e) for e in events]


@pytest.mark.parametrize("name", sorted(SHIFT_AT))
def test_data_shift_is_found_within_one_checkpoint(name):
    found = [(epoch, e) for epoch, e in events_in_time(name) if e.kind == "shift"]
    assert len(found) == 1, found
    epoch, event = found[0]
    # the first checkpoint trained on the new data is SHIFT_AT + 1
    assert abs(epoch - (SHIFT_AT[name] + 1)) <= 1
    assert event.score >= 0.5
    assert event.turning_angle > math.radians(60)


@pytest.mark.parametrize("name", NO_SHIFT)
def test_no_shift_flagged_on_ordinary_training(name):
    assert [e for _, e in events_in_time(name, seed=3) if e.kind == "shift"] == []


def test_learning_rate_step_is_reported_as_a_slowdown():
    slowdowns = [(epoch, e) for epoch, e in events_in_time("lr_step") if e.kind == "slowdown"]
    assert len(slowdowns) == 1
    epoch, event = slowdowns[0]
    assert abs(epoch - (LR_STEP_AT + 1)) <= 1
    assert event.score <= -0.5


def test_shifts_of_several_runs_are_reported_per_run():
    X, truth = stack(["init1", "shift_invert", "shift_rotate"])
    events = [e for e in wtraj.detect_shifts(X) if e.kind == "shift"]
    assert len(events) == 2
    assert all(isinstance(e, ShiftEvent) for e in events)
    runs = {int(truth[e.index]) for e in events}
    assert runs == {1, 2}
    # one label per run, as given by separate_trajectories
    labels = wtraj.separate_trajectories(X)
    assert sorted(e.run for e in events) == sorted({labels[e.index] for e in events})


def test_given_labels_are_used():
    X, truth = stack(["init1", "shift_invert"])
    events = wtraj.detect_shifts(distances(X), truth, metric="precomputed")
    shifts = [e for e in events if e.kind == "shift"]
    assert [(e.run, e.index) for e in shifts] == [(1, 26 + SHIFT_AT["shift_invert"] + 1)]


def _path_distances(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None] - points[None, :], axis=-1)


def test_consecutive_long_steps_are_one_event():
    # one checkpoint every unit along x, then two long steps at a right angle, then short ones
    x = np.concatenate([np.arange(8.0), np.full(7, 7.0)])
    y = np.concatenate([np.zeros(8), [23.0, 43.0], 43.0 + np.arange(1, 6)])
    D = _path_distances(np.stack([x, y], axis=1))
    events = run_events(D, np.arange(x.shape[0]), 0.5, 3)
    assert [(p, kind) for p, kind, _, _ in events] == [(8, "shift")]
    assert events[0][3] == pytest.approx(math.pi / 2)


def test_longer_steps_straight_on_are_no_shift():
    # a warm-up, or a sparser checkpoint cadence: steps grow 4x, the path goes on straight
    position = np.concatenate([np.arange(8.0), 7.0 + 4.0 * np.arange(1, 6)])
    D = _path_distances(np.stack([position, np.zeros_like(position)], axis=1))
    events = run_events(D, np.arange(position.shape[0]), 0.5, 3)
    assert [kind for _, kind, _, _ in events] == []


def _jump_then_turn(turn_out_degrees: float) -> np.ndarray:
    """Unit steps along x, a step of 10 turning 80 degrees, then one of 3 turning ``turn_out_degrees``."""
    points = [np.array([float(t), 0.0]) for t in range(8)]
    for length, heading in ((10.0, 80.0), (3.0, 80.0 + turn_out_degrees)):
        angle = math.radians(heading)
        points.append(points[-1] + length * np.array([math.cos(angle), math.sin(angle)]))
    points += [points[-1] + np.array([float(t), 0.0]) for t in range(1, 6)]
    return np.array(points)


def test_a_loss_spike_that_the_next_step_comes_back_from_is_no_shift():
    # a spike overshoots and the next step turns back more than the path turned into it;
    # after a shift the path settles into the new direction and turns less
    spike = _path_distances(_jump_then_turn(110.0))
    events = run_events(spike, np.arange(spike.shape[0]), 0.5, 3)
    assert [kind for _, kind, _, _ in events if kind == "shift"] == []
    shift = _path_distances(_jump_then_turn(30.0))
    events = run_events(shift, np.arange(shift.shape[0]), 0.5, 3)
    assert [(p, kind) for p, kind, _, _ in events if kind == "shift"] == [(8, "shift")]


def test_early_training_is_compared_with_a_full_baseline_only():
    # the first steps grow 5x and turn by a right angle (momentum building up,
    # a warm-up), then the run goes on straight: no shift
    points = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 5.0], [1.0, 10.0], [1.0, 15.0], [1.0, 20.0]])
    events = run_events(_path_distances(points), np.arange(points.shape[0]), 0.5, 3)
    assert [kind for _, kind, _, _ in events] == []
    # the same turn after three steps of baseline is a shift, at the first point past it
    points = np.concatenate([[[-2.0, 0.0], [-1.0, 0.0]], points])
    events = run_events(_path_distances(points), np.arange(points.shape[0]), 0.5, 3)
    assert [(p, kind) for p, kind, _, _ in events] == [(4, "shift")]
    assert events[0][2] == pytest.approx(math.log10(5.0))
    assert events[0][3] == pytest.approx(math.pi / 2)


def test_turning_angle_from_distances():
    assert turning_angle(1.0, 1.0, 2.0) == pytest.approx(0.0)
    assert turning_angle(1.0, 1.0, math.sqrt(2.0)) == pytest.approx(math.pi / 2)
    assert math.isnan(turning_angle(0.0, 1.0, 1.0))


def test_learning_rate_drop_of_a_real_run_is_a_slowdown(zoo_small):
    # the small slice's step-schedule run, checkpointed every iteration, lr x0.1 at one row
    run = next(r for r in zoo_small if r.meta["lr_drops"])
    permutation = np.random.default_rng(5).permutation(run.weights.shape[0])
    events = wtraj.detect_shifts(run.weights[permutation], np.zeros(permutation.shape[0], dtype=np.int64))
    found = [(int(permutation[e.index]), e.kind) for e in events]
    for drop in run.meta["lr_drops"]:
        assert any(abs(row - drop) <= 1 and kind == "slowdown" for row, kind in found), found
    assert [row for row, kind in found if kind == "shift"] == [], found


def test_bad_input():
    D = distances(weights("init0")[:8])
    with pytest.raises(ValueError, match="at least 4 distinct checkpoints"):
        wtraj.detect_shifts(D[:3, :3], metric="precomputed")
    with pytest.raises(ValueError, match="labels must be an int array of shape"):
        wtraj.detect_shifts(D, np.zeros(5, dtype=int), metric="precomputed")
    with pytest.raises(ValueError, match="threshold"):
        wtraj.detect_shifts(D, metric="precomputed", threshold=0)
    with pytest.raises(ValueError, match="baseline"):
        wtraj.detect_shifts(D, metric="precomputed", baseline=0)
