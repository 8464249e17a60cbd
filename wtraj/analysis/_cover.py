"""Split checkpoints that share a start into k runs: chains of least squared step.

All runs of a component start at its root (the shared initialisation, or the
parent checkpoint of fine-tunes). Given a progress value per checkpoint (how
far into training it lies), every checkpoint except the root gets one
predecessor of smaller progress; the root may be the predecessor of ``k``
checkpoints, every other checkpoint of at most one; exactly ``k`` chains
leave the root. Among all such covers, the one with the least sum of squared
distances between consecutive checkpoints is chosen. A step joins a
checkpoint and one of its nearest neighbours (either way round), or a
checkpoint and the next in progress order (which keeps every ``k``
solvable), or ends at a jump's end (a data shift) from any checkpoint about
as far from it as the nearest (:func:`_jump_steps`); no chain starts at a
jump's end while the others suffice.

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

The covers for ``k = 1, 2, ...`` are solved as one min-cost flow, one chain
at a time (successive shortest paths). For ``k = 1`` the only cover is the
checkpoints in progress order. Each further chain is the cheapest change of
the current cover that starts one more chain at the root and ends one more
chain somewhere: a shortest path in the residual graph, found by Dijkstra on
costs made non-negative by node potentials (Johnson's reweighting), so a
cover of ``k`` chains costs ``k`` sparse shortest paths of O(E log N), with
E about ``N`` times the number of neighbours. A min-cost flow gains nothing
from solving each ``k`` afresh, and a bipartite matching with ``k`` copies
of the root and of the chain end is highly degenerate: the sparse matching
solver took minutes for 50 runs of 40 checkpoints.

Residual graph: a source ``S``, the root ``R``, a row per checkpoint other
than the root (its successor slot) and a column per such checkpoint (its
predecessor slot). Unused candidate steps ``row a -> column b`` cost their
squared length, used ones appear reversed with the negated cost; ``R ->
column b`` costs the squared first step, reversed when used; a row in use
(not a chain end) may return to ``S`` at the cost of ending a chain there.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

SOURCE, ROOT = 0, 1
# a checkpoint whose shortest candidate step in is this many times the median
# shortest step in is a jump's end (a data shift); development groups: the
# inverted-image shift's jump 7.1-8.5 against steps of 0.01-2.4
JUMP_STEPS = 5.0
# the checkpoints a jump may leave from: at most this fraction longer than the
# shortest jump in (the last checkpoints before a shift, of every sibling,
# lie within 1.5 % of one distance from the first after it)
JUMP_SPREAD = 0.02


def _jump_steps(D, rank, root, pred, succ):
    """Extra candidate steps into the ends of jumps, and which checkpoints end a jump.

    A jump (a data shift) is about as long from any late checkpoint before
    it, of its own run or a sibling's, and the few that are a checkpoint's
    nearest are those where it happens to be shortest: every checkpoint
    lower in progress within ``JUMP_SPREAD`` of the shortest jump is a
    candidate, so that the runs' own steps decide where the jump leaves.
    No chain starts at a jump's end: it is reached from its run's earlier
    checkpoints, and a chain started there would leave them to a sibling's.

    Returns the extra steps' ends (from, to) and a mask over the checkpoints.
    """
    n = D.shape[0]
    shortest = D[root].copy()
    np.minimum.at(shortest, succ, D[pred, succ])
    others = np.arange(n) != root
    target = others & (shortest > JUMP_STEPS * np.median(shortest[others]))
    jump_from, jump_to = [], []
    for v in np.flatnonzero(target):
        near = np.flatnonzero(others & (rank < rank[v]) & (D[v] <= (1.0 + JUMP_SPREAD) * shortest[v]))
        jump_from.append(near)
        jump_to.append(np.full(near.shape[0], v))
    if not jump_from:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), target
    return np.concatenate(jump_from), np.concatenate(jump_to), target


class ChainCovers:
    """The least-cost covers of one component by 1, 2, ... chains from ``root``.

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
        Distances between distinct checkpoints.
    progress : ndarray, shape (N,), float64
        Position in training of each checkpoint (the root's is the least);
        ties are broken by index.
    root : int
        The common start of all chains.
    neighbours : ndarray, shape (N, K), int64
        Candidate successors of each checkpoint (its nearest neighbours).
    reach : float
        Credit per squared distance from the root at which a chain ends
        (module docstring); 0 for the chains of least squared step alone.
    """

    def __init__(
        self, D: np.ndarray, progress: np.ndarray, root: int, neighbours: np.ndarray, reach: float = 0.0
    ):
        n = D.shape[0]
        if n < 2:
            raise ValueError("a chain cover needs the root and at least one other checkpoint")
        self.D, self.root = D, root
        rank = np.empty(n, dtype=np.int64)
        by_progress = np.lexsort((np.arange(n), progress))
        rank[by_progress] = np.arange(n)
        self.rank = rank
        # checkpoints other than the root, numbered 0 .. m-1: rows and columns of the flow
        self.others = np.delete(np.arange(n), root)
        self.m = m = n - 1
        index_of = np.full(n, -1, dtype=np.int64)
        index_of[self.others] = np.arange(m)
        near = np.repeat(np.arange(n), neighbours.shape[1])
        # a step joins a checkpoint and one of its nearest, either way round
        pred = np.concatenate([near, neighbours.ravel(), by_progress[:-1]])
        succ = np.concatenate([neighbours.ravel(), near, by_progress[1:]])
        keep = (pred != root) & (succ != root) & (rank[succ] > rank[pred])
        pred, succ = pred[keep], succ[keep]
        jump_from, jump_to, self.jump_target = _jump_steps(D, rank, root, pred, succ)
        pred, succ = np.concatenate([pred, jump_from]), np.concatenate([succ, jump_to])
        # the next checkpoint in progress order may also be a neighbour: one step each
        pair = np.unique(pred * n + succ)
        self.step_from = index_of[pair // n]
        self.step_to = index_of[pair % n]
        self.step_cost = D[pair // n, pair % n] ** 2
        self.first_cost = D[root, self.others] ** 2
        # ending a chain at a checkpoint costs minus its credit for reach
        self.end_cost = -reach * self.first_cost
        self.chain_order = index_of[by_progress[by_progress != root]]
        self._single_chain()

    def _single_chain(self) -> None:
        """Start over from the one cover by a single chain: the checkpoints in progress order."""
        chain_order = self.chain_order
        self.pred = np.empty(self.m, dtype=np.int64)  # predecessor of each column; -1: the root
        self.pred[chain_order[0]] = -1
        self.pred[chain_order[1:]] = chain_order[:-1]
        self.k = 1
        self.potential = self._first_potentials(chain_order)

    def _first_potentials(self, chain_order: np.ndarray) -> np.ndarray:
        """Node potentials under which every residual arc of the single chain costs >= 0.

        The used steps run along the progress order and every candidate step
        rises in it, so the column potentials are shortest distances over a
        graph without cycles, relaxed once in progress order; the rows'
        follow from their used (reversed, tight) steps.
        """
        m = self.m
        x = self.first_cost - self.first_cost[chain_order[0]]  # columns
        starts = np.searchsorted(self.step_from, np.arange(m + 1))
        for a, s in zip(chain_order[:-1], chain_order[1:]):
            # row a's used step reaches s; its other candidate steps reach later columns
            steps = slice(starts[a], starts[a + 1])
            targets = self.step_to[steps]
            used_cost = self.D[self.others[a], self.others[s]] ** 2
            np.minimum.at(x, targets, x[s] + self.step_cost[steps] - used_cost)
        used_rows, used_columns = chain_order[:-1], chain_order[1:]
        rows = np.empty(m)
        rows[used_rows] = x[used_columns] - self.D[self.others[used_rows], self.others[used_columns]] ** 2
        # at most the rows' bound (arcs into the source stay >= 0); with a single
        # checkpoint besides the root no row is in use and 0 will do
        source = float(np.min(rows[used_rows] + self.end_cost[used_rows], initial=0.0))
        last = chain_order[-1]
        rows[last] = source - self.end_cost[last]
        return np.concatenate([[source, -self.first_cost[chain_order[0]]], rows, x])

    def cover(self, k: int) -> tuple[np.ndarray, float]:
        """Chain of each node and the cost, for ``k`` chains (1 <= k <= N - 1).

        Returns
        -------
        chain : ndarray, shape (N,), int64
            Chain of each checkpoint, 0 .. k-1, numbered in the progress order
            of each chain's first checkpoint after the root; the root is on
            the chain of its nearest successor.
        cost : float
            Sum of squared steps within the chains, the steps from the root included.
        """
        if not 1 <= k <= self.m:
            raise ValueError(f"k must lie between 1 and {self.m}; got {k}")
        if k < self.k:
            self._single_chain()
        while self.k < k:
            self._add_chain()
        return self._chains()

    def _add_chain(self) -> None:
        m = self.m
        # node numbers: SOURCE, ROOT, rows 2 .. m+1, columns m+2 .. 2m+1
        row, column = 2, 2 + m
        used = self.pred[self.step_to] == self.step_from
        from_root = self.pred == -1
        # a chain may start anywhere but a jump's end (see _jump_steps)
        opens = from_root | ~self.jump_target[self.others]
        ends = np.ones(m, dtype=bool)
        ends[self.pred[self.pred >= 0]] = False
        busy = np.flatnonzero(~ends)
        tails = np.concatenate(
            [
                np.where(used, column + self.step_to, row + self.step_from),
                np.where(from_root, column + np.arange(m), ROOT)[opens],
                row + busy,
            ]
        )
        heads = np.concatenate(
            [
                np.where(used, row + self.step_from, column + self.step_to),
                np.where(from_root, ROOT, column + np.arange(m))[opens],
                np.full(busy.shape[0], SOURCE),
            ]
        )
        cost = np.concatenate(
            [
                np.where(used, -self.step_cost, self.step_cost),
                np.where(from_root, -self.first_cost, self.first_cost)[opens],
                self.end_cost[busy],
            ]
        )
        # rounding may leave tight arcs a hair below zero; Dijkstra keeps stored zeros as arcs
        reduced = np.maximum(cost + self.potential[tails] - self.potential[heads], 0.0)
        size = 2 * m + 2
        graph = csr_matrix((reduced, (tails, heads)), shape=(size, size))
        distance, previous = dijkstra(graph, indices=ROOT, return_predecessors=True)
        if not np.isfinite(distance[SOURCE]):
            # more chains than checkpoints they may start at: let them start at jumps' ends too
            self.jump_target[:] = False
            return self._add_chain()
        # the path runs ROOT -> column -> row -> ... -> row -> SOURCE; apply it from its end
        # (an arc into a column gives it a new predecessor; one out of a column,
        # the reversed old step, needs nothing more; the last row becomes an end)
        node = SOURCE
        while node != ROOT:
            before = previous[node]
            if node >= column:
                self.pred[node - column] = -1 if before == ROOT else before - row
            node = before
        self.potential += np.minimum(distance, distance[SOURCE])
        self.k += 1

    def _chains(self) -> tuple[np.ndarray, float]:
        n = self.D.shape[0]
        successor = np.full(self.m, -1, dtype=np.int64)
        has_pred = self.pred >= 0
        successor[self.pred[has_pred]] = np.flatnonzero(has_pred)
        firsts = sorted(np.flatnonzero(self.pred == -1), key=lambda a: self.rank[self.others[a]])
        chain = np.full(n, -1, dtype=np.int64)
        cost = 0.0
        for c, a in enumerate(firsts):
            cost += self.first_cost[a]
            while True:
                chain[self.others[a]] = c
                b = successor[a]
                if b < 0:
                    break
                cost += self.D[self.others[a], self.others[b]] ** 2
                a = b
        nearest = min(firsts, key=lambda a: (self.first_cost[a], a))
        chain[self.root] = chain[self.others[nearest]]
        return chain, cost
