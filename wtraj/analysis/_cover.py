"""Split checkpoints that share a start into k runs: chains of least squared step.

All runs of a component start at its root (the shared initialisation, or the
parent checkpoint of fine-tunes). Given a progress value per checkpoint (how
far into training it lies), every checkpoint except the root gets one
predecessor of smaller progress; the root may be the predecessor of ``k``
checkpoints, every other checkpoint of at most one; exactly ``k`` chains
leave the root. Among all such covers, the one with the least sum of squared
distances between consecutive checkpoints is chosen: a minimum-weight perfect
matching between "successor slots" and checkpoints, solved with
:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching` on a sparse
graph (each checkpoint may be followed by one of its nearest neighbours or by
the next checkpoint in progress order, which keeps every ``k`` solvable).

Squared steps are what separates runs that run side by side: with ``A_t,
B_t`` two runs and ``delta_t = A_t - B_t``, crossing from one run to the other
between ``t`` and ``t + 1`` adds ``2 <delta_t, delta_t+1>`` to the cost,
positive while the difference between the runs persists; and a chain that
skips checkpoints pays more than one that visits them. The number of chains
is chosen by the caller (:mod:`wtraj.analysis.separation`).

Ending a chain costs nothing, so the least squared steps may end one run
early and carry its later checkpoints on a sibling's chain, two per epoch.
``reach`` counters that: each chain is credited ``reach`` times the squared
distance from the root of its last checkpoint. Summed along a chain, that is
a credit for every step of ``reach * (|v - root|^2 - |u - root|^2)``: steps
away from the start earn it, a step to a sibling at the same stage of
training does not.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching


def chain_cover(
    D: np.ndarray, progress: np.ndarray, root: int, k: int, neighbours: np.ndarray, reach: float = 0.0
) -> tuple[np.ndarray, float]:
    """Split the checkpoints into ``k`` chains that leave ``root``, with increasing progress.

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
        Distances between distinct checkpoints.
    progress : ndarray, shape (N,), float64
        Position in training of each checkpoint (the root's is the least);
        ties are broken by index.
    root : int
        The common start of all chains.
    k : int
        Number of chains, 1 <= k <= N - 1.
    neighbours : ndarray, shape (N, K), int64
        Candidate successors of each checkpoint (its nearest neighbours).
    reach : float
        Credit per squared distance from the root at which a chain ends
        (module docstring); 0 for the chains of least squared step alone.

    Returns
    -------
    chain : ndarray, shape (N,), int64
        Chain of each checkpoint, 0 .. k-1, numbered in the progress order of
        each chain's first checkpoint after the root; the root is on the
        chain of its nearest successor.
    cost : float
        Sum of squared steps within the chains, the steps from the root included.
    """
    n = D.shape[0]
    rank = np.empty(n, dtype=np.int64)
    by_progress = np.lexsort((np.arange(n), progress))
    rank[by_progress] = np.arange(n)
    later = rank[neighbours] > rank[:, None]
    pred = np.concatenate([np.repeat(np.arange(n), neighbours.shape[1])[later.ravel()], by_progress[:-1]])
    succ = np.concatenate([neighbours.ravel()[later.ravel()], by_progress[1:]])
    keep = (pred != root) & (succ != root) & (rank[succ] > rank[pred])
    # the next checkpoint in progress order may also be a neighbour: one edge each
    pair = np.unique(pred[keep] * n + succ[keep])
    pred, succ = pair // n, pair % n
    # rows: n - 1 checkpoints' successor slots (root excluded), then k root slots;
    # columns: the n - 1 checkpoints other than the root, then k end slots
    others = np.delete(np.arange(n), root)
    column_of = np.full(n, -1, dtype=np.int64)
    column_of[others] = np.arange(n - 1)
    row_of = column_of
    # ending a chain costs nothing beyond a tiny positive weight (the sparse
    # solver reads stored zeros as missing edges), less the credit for its
    # reach; exactly k chains end, so the credit is shifted to stay positive
    tiny = 1e-300 + 1e-12 * float(D.max()) ** 2
    reach_credit = reach * D[root, others] ** 2
    end_cost = reach_credit.max() - reach_credit + tiny
    rows = np.concatenate(
        [row_of[pred], np.repeat(n - 1 + np.arange(k), n - 1), np.tile(np.arange(n - 1), k)]
    )
    cols = np.concatenate(
        [column_of[succ], np.tile(np.arange(n - 1), k), np.repeat(n - 1 + np.arange(k), n - 1)]
    )
    weight = np.concatenate(
        [
            D[pred, succ] ** 2 + tiny,
            np.tile(D[root, others] ** 2, k) + tiny,
            np.tile(end_cost, k),
        ]
    )
    graph = coo_matrix((weight, (rows, cols)), shape=(n - 1 + k, n - 1 + k)).tocsr()
    _, matched = min_weight_full_bipartite_matching(graph)
    chain = np.full(n, -1, dtype=np.int64)
    firsts = sorted((int(others[matched[n - 1 + c]]) for c in range(k)), key=lambda u: rank[u])
    cost = 0.0
    for c, u in enumerate(firsts):
        cost += D[root, u] ** 2
        while True:
            chain[u] = c
            column = matched[row_of[u]]
            if column >= n - 1:
                break
            v = int(others[column])
            cost += D[u, v] ** 2
            u = v
    chain[root] = chain[min(firsts, key=lambda u: (D[root, u], u))]
    return chain, cost
