"""The chain covers of wtraj.analysis._cover against every cover of small point sets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from wtraj.analysis._cover import ChainCovers


def best_by_enumeration(D, progress, root, k, reach):
    """Least cost (squared steps less the reach credit) over all covers by k chains from root."""
    n = D.shape[0]
    rank = np.argsort(np.lexsort((np.arange(n), progress)))
    others = [u for u in range(n) if u != root]
    choices = [[root] + [p for p in others if rank[p] < rank[u]] for u in others]
    best = np.inf
    for preds in itertools.product(*choices):
        preds = np.array(preds)
        if np.count_nonzero(preds == root) != k:
            continue
        inner = preds[preds != root]
        if np.unique(inner).shape[0] != inner.shape[0]:
            continue  # a checkpoint followed by two
        ends = [u for u in others if u not in inner]
        cost = np.sum(D[preds, others] ** 2) - reach * np.sum(D[root, ends] ** 2)
        best = min(best, cost)
    return best


def objective(D, chain, cost, root, progress, reach):
    ends = []
    for c in range(chain.max() + 1):
        members = np.flatnonzero((chain == c) & (np.arange(D.shape[0]) != root))
        ends.append(members[np.argmax(progress[members])])
    return cost - reach * np.sum(D[root, ends] ** 2)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reach", [0.0, 0.3])
def test_each_cover_is_the_least_cost_one(seed, reach):
    rng = np.random.default_rng(seed)
    n = 7
    X = np.cumsum(rng.standard_normal((n, 3)), axis=0)
    D = cdist(X, X)
    root = int(rng.integers(n))
    progress = D[root] + 0.01 * rng.random(n)
    progress[root] = 0.0
    # every later checkpoint is a candidate successor: the enumeration sees the same steps
    neighbours = np.argsort(D + np.diag(np.full(n, np.inf)), axis=1)[:, : n - 1]
    covers = ChainCovers(D, progress, root, neighbours, reach=reach)
    for k in range(1, n):
        chain, cost = covers.cover(k)
        assert sorted(np.unique(chain)) == list(range(k))
        steps = 0.0
        for c in range(k):
            members = np.flatnonzero((chain == c) & (np.arange(n) != root))
            path = np.concatenate([[root], members[np.argsort(progress[members])]])
            steps += np.sum(D[path[:-1], path[1:]] ** 2)
        assert cost == pytest.approx(steps, rel=1e-12)
        expected = best_by_enumeration(D, progress, root, k, reach)
        assert objective(D, chain, cost, root, progress, reach) == pytest.approx(
            expected, rel=1e-9, abs=1e-12
        )


def test_asking_for_fewer_chains_starts_over():
    rng = np.random.default_rng(7)
    X = np.cumsum(rng.standard_normal((30, 4)), axis=0)
    D = cdist(X, X)
    progress = D[0].copy()
    neighbours = np.argsort(D + np.diag(np.full(30, np.inf)), axis=1)[:, :5]
    grown = ChainCovers(D, progress, 0, neighbours)
    grown.cover(6)
    chain, cost = grown.cover(3)
    fresh_chain, fresh_cost = ChainCovers(D, progress, 0, neighbours).cover(3)
    np.testing.assert_array_equal(chain, fresh_chain)
    assert cost == fresh_cost


def test_one_chain_is_the_progress_order_and_k_is_checked():
    X = np.array([[0.0], [1.0], [3.0], [2.0]])
    D = cdist(X, X)
    covers = ChainCovers(D, X[:, 0], 0, np.array([[1], [3], [3], [2]]))
    chain, cost = covers.cover(1)
    np.testing.assert_array_equal(chain, [0, 0, 0, 0])
    assert cost == 3.0
    with pytest.raises(ValueError, match="between 1 and 3"):
        covers.cover(4)


def test_a_root_and_one_checkpoint():
    D = np.array([[0.0, 2.0], [2.0, 0.0]])
    chain, cost = ChainCovers(D, np.array([0.0, 2.0]), 0, np.array([[1], [0]])).cover(1)
    np.testing.assert_array_equal(chain, [0, 0])
    assert cost == 4.0


def test_a_jump_is_taken_from_the_checkpoint_nearest_its_end():
    # run A along x, run B along y, and a data shift that sends A far out (F):
    # no checkpoint has F among its nearest, and the one just before F in
    # progress is B's last; F's nearest is A's last, which a step may come from
    A = [(x, 0.0) for x in range(1, 6)]
    B = [(0.0, y + 0.1) for y in range(1, 6)]
    X = np.array([(0.0, 0.0), *A, *B, (6.0, -100.0)])
    D = cdist(X, X)
    progress = np.array([0.0, 1, 2, 3, 4, 5, 1.1, 2.1, 3.1, 4.1, 5.1, 200.0])
    neighbours = np.argsort(D + np.diag(np.full(12, np.inf)), axis=1)[:, :2]
    assert not np.any(neighbours == 11)
    chain, cost = ChainCovers(D, progress, 0, neighbours).cover(2)
    assert chain[11] == chain[5] != chain[10]
    runs = [[0, 1, 2, 3, 4, 5, 11], [0, 6, 7, 8, 9, 10]]
    assert cost == pytest.approx(sum(np.sum(D[r[:-1], r[1:]] ** 2) for r in runs), rel=1e-12)


def test_a_jump_leaves_from_its_own_run():
    # two runs side by side (2 apart, steps of 1) and a data shift that sends run A
    # 30 away: every checkpoint before it lies within 2 % of that distance, none has
    # the shift's end among its nearest, and the checkpoint just before it in
    # progress is B's; the jump may leave from any of them, and leaves from A's last
    A = [(x, 1.0, 0.0) for x in range(1, 7)]
    B = [(x, -1.0, 0.0) for x in range(1, 7)]
    shifted = [(6.0 + x, 1.0, 30.0) for x in range(4)]
    X = np.array([(0.0, 0.0, 0.0), *A, *B, *shifted])
    D = cdist(X, X)
    progress = np.concatenate([[0.0], np.arange(1, 7), np.arange(1, 7) + 0.1, 100.0 + np.arange(4)])
    neighbours = np.argsort(D + np.diag(np.full(17, np.inf)), axis=1)[:, :2]
    covers = ChainCovers(D, progress, 0, neighbours)
    chain, _ = covers.cover(2)
    assert np.all(chain[13:] == chain[6]) and np.all(chain[1:7] == chain[6])
    assert np.all(chain[7:13] != chain[6])
    # no chain starts at the shift's end unless every checkpoint must start one
    assert covers.jump_target.tolist() == [False] * 13 + [True, False, False, False]
    chain, _ = covers.cover(16)
    assert sorted(chain[1:].tolist()) == list(range(16))
