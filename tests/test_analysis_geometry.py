"""The analysis's geometry from distances: triangle angles, orthogonal starts, the rise from the start."""

from __future__ import annotations

import math

import numpy as np
import pytest

import wtraj
from wtraj.analysis._direction import path_direction, rise_from_start
from wtraj.analysis._geometry import angle_opposite, turning_angle
from wtraj.analysis._rooted import first_step_count
from wtraj.analysis._starts import cosine_of, orthogonal_links


def _distances(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(points[:, None] - points[None, :], axis=-1)


@pytest.mark.parametrize("angle", [1e-7, 1e-4, 0.3, math.pi / 2, 3.0, math.pi - 1e-6])
def test_turning_angle_matches_the_angle_between_steps(angle):
    u = np.array([1.0, 0.0])
    v = 0.7 * np.array([math.cos(angle), math.sin(angle)])
    found = float(turning_angle(1.0, 0.7, np.linalg.norm(u + v)))
    # from distances alone, a turn of t moves the chord by ~t^2: 1e-16 relative gives ~1e-8 rad
    assert found == pytest.approx(angle, abs=2e-8)


def test_angle_opposite_edge_cases():
    assert math.isnan(float(angle_opposite(0.0, 1.0, 1.0)))
    # the triangle inequality broken by rounding: straight lines
    assert float(angle_opposite(1.0, 1.0, 2.0 + 1e-15)) == pytest.approx(math.pi)
    assert float(angle_opposite(1.0, 2.0, 1.0 - 1e-15)) == pytest.approx(0.0, abs=1e-7)


def test_cosine_of_checkpoints_from_distances_and_norms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 50))
    X[1] = X[0] + 1e-6 * rng.normal(size=50)
    D = _distances(X)
    norms = np.linalg.norm(X, axis=1)
    i, j = np.array([0, 0, 2]), np.array([1, 2, 3])
    truth = np.einsum("ij,ij->i", X[i], X[j]) / (norms[i] * norms[j])
    np.testing.assert_allclose(cosine_of(D, norms, i, j), truth, rtol=0, atol=1e-12)


def _walk(rng, start, n, step, drift):
    steps = drift + step * rng.normal(size=(n - 1, start.shape[0]))
    return np.vstack([start, start + np.cumsum(steps, axis=0)])


def test_runs_from_different_starts_are_cut_at_the_orthogonal_link():
    rng = np.random.default_rng(1)
    dim = 400
    # two directed runs whose steps (~8) are half the gap between their starts (~28): the
    # steps of a run from one start can be that long, the angle between the runs tells them apart
    a = _walk(rng, rng.normal(size=dim), 20, 0.1, 0.4 * rng.normal(size=dim))
    b = _walk(rng, rng.normal(size=dim), 20, 0.1, 0.4 * rng.normal(size=dim))
    X = np.vstack([a, b])
    is_link, neighbour = orthogonal_links(_distances(X), np.linalg.norm(X, axis=1))
    assert is_link.sum() == 1
    i = int(np.flatnonzero(is_link)[0])
    assert (i < 20) != (neighbour[i] < 20)
    labels = wtraj.separate_trajectories(X)
    assert labels.max() == 1 and len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1
    # the same from a precomputed matrix with the norms
    given = wtraj.separate_trajectories(_distances(X), metric="precomputed", norms=np.linalg.norm(X, axis=1))
    np.testing.assert_array_equal(given, labels)


def test_norms_are_checked():
    D = _distances(np.eye(3))
    with pytest.raises(ValueError, match="norms must hold one number per checkpoint"):
        wtraj.separate_trajectories(D, metric="precomputed", norms=np.ones(2))
    with pytest.raises(ValueError, match="norms are given only with"):
        wtraj.separate_trajectories(np.eye(3), norms=np.ones(3))


def test_a_long_first_step_is_not_several_runs():
    # a run that moves far in its first epoch and less after: its second checkpoint
    # is within 1.5x of the first, but a step of its own further out
    path = np.array([[0.0, 0.0], [9.0, 0.0], [12.5, 5.0], [13.0, 7.5], [13.2, 9.0]])
    assert first_step_count(_distances(path), 0) == 1
    # three runs leaving one start side by side
    side_by_side = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.2], [1.0, -0.2], [2.0, 0.0]])
    assert first_step_count(_distances(side_by_side), 0) == 3


def test_direction_from_the_rise_of_the_distance():
    # steps that grow (a warm-up) on a path that bends and settles: the start is where distance rises fast
    t = np.linspace(0.0, 1.0, 30) ** 0.5
    path = np.stack([np.sin(2.5 * t), 1.0 - np.cos(2.5 * t)], axis=1)
    path = path[np.r_[0, 1, 2, 3, 4, 5:30]]
    D = _distances(path)
    assert rise_from_start(D, np.arange(30)) > rise_from_start(D, np.arange(30)[::-1])
    assert path_direction(D, np.arange(30)).forward
    assert not path_direction(D, np.arange(30)[::-1]).forward


def test_disagreeing_evidence_gives_low_confidence():
    # out from the start, then around a circle centred on it: the distance from row 0 rises
    # fast and flattens, while the steps grow all along: the cues disagree, confidence <= 0.6
    radius = np.cumsum(np.linspace(0.2, 0.6, 8))
    arc = np.cumsum(np.linspace(0.7, 1.5, 16)) / radius[-1]
    path = np.vstack(
        [
            [0.0, 0.0],
            np.stack([radius, np.zeros(8)], axis=1),
            radius[-1] * np.stack([np.cos(arc), np.sin(arc)], axis=1),
        ]
    )
    direction = path_direction(_distances(path), np.arange(path.shape[0]))
    assert direction.forward and direction.z > 0
    assert 0.5 <= direction.confidence <= 0.6
