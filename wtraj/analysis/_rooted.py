"""Stages 2 and 3 of run separation: the start of a group of runs, their number, the runs.

2. **How many runs share a start** (one component), and which checkpoint is
   the start. Runs from one start leave it side by side with first steps of
   about one length, while a run's second checkpoint lies a step of its own
   farther out: ``k`` is the number of checkpoints within
   ``FIRST_STEP_RATIO`` times the start's shortest first step, less those
   that lie after another of them (:func:`first_step_count`). The root is the
   end of the component's seriation (or, where the norms are known and both
   ends lie high in their range, the checkpoint of least norm) from which
   distances rise the fastest along its runs' chains
   (:func:`wtraj.analysis._direction.rise_from_start`);
   an end whose first checkpoints lie on opposite sides of it (more than
   ``OPPOSITE_ANGLE`` apart) is inside a run and is passed over. The chain
   covers are solved in :mod:`wtraj.analysis._cover`.
3. **The runs themselves** are ``k`` chains from that root in three steps.
   First the chains of least squared step, each credited ``REACH`` times the
   squared distance from the root at which it ends (else ending a chain early
   and carrying its run's later checkpoints on a sibling's chain may cost
   less), rising in progress over ``CHAIN_PROGRESS_NEIGHBOURS`` neighbours.
   These chains have one checkpoint per stage of training but may swap runs;
   :mod:`wtraj.analysis._relink` then reassigns checkpoints and continuations
   between the chains, position by position, to the least total squared
   distance over all pairs up to ``RELINK_WINDOW`` positions apart. Last, a
   chain that went on past its run's end (a run stopped early) through
   every other checkpoint of a sibling, for the credit, ends where its run
   ends (:mod:`wtraj.analysis._ends`). Fine-tunes that a chain also covers
   are cut from it by :mod:`wtraj.analysis._branches`.

Measurements behind each constant: bench/RESULTS.md, "Analysis constants".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from wtraj.analysis._cover import ChainCovers
from wtraj.analysis._direction import rise_from_start
from wtraj.analysis._ends import separate_shared_ends
from wtraj.analysis._geometry import angle_opposite
from wtraj.analysis._relink import relink_chains
from wtraj.analysis._tour import nearest_neighbours
from wtraj.analysis._tree import minimum_spanning_tree
from wtraj.analysis.ordering import order_nodes

# first steps of runs from one start at a wider angle than this lie on
# opposite sides of it: the candidate is inside a run
OPPOSITE_ANGLE = np.radians(120.0)
# runs that leave a start off the seriation's ends (the least norm) leave it at
# about a right angle at most (the zoo's development groups: first steps 8-46
# degrees apart; runs along orthogonal axes, with noise, 87-95), where a run
# turning at its own least norm (a one-cycle schedule's peak) turns back by more
SHARED_START_ANGLE = np.radians(100.0)
# neighbours that define progress (geodesic distance from the root)
PROGRESS_NEIGHBOURS = 3
# candidate successors per checkpoint in the chain cover, besides one per run
# from the same start (cover_width): enough to reach a run's next checkpoint
# past the same-time checkpoints of its siblings
COVER_NEIGHBOURS = 20
# most extra candidates for siblings: bounds the neighbour table (N x 220)
MAX_SIBLING_NEIGHBOURS = 200
# the runs' chains rise in geodesic progress over this many neighbours (over
# fewer, a sibling's shorter path late in training may forbid a run's own step)
CHAIN_PROGRESS_NEIGHBOURS = 10
# credit per squared distance from the start at which a run's chain ends
REACH = 0.3
# pairs of checkpoints at most this many positions apart on a chain decide
# which continuation is whose: a run's early offset shows only summed over many
RELINK_WINDOW = 16
# runs that share a start leave it with first steps of about one length (on
# the zoo's development part within 13 % of each other), a run's second
# checkpoint lies at least 44 % farther out than its first
FIRST_STEP_RATIO = 1.25
# the checkpoint before another on its chain is its parent unless it is ahead in
# progress by more than this fraction of their step (a chain running back
# along a fine-tune's branch; progress along one run wavers by less)
AHEAD_FRACTION = 0.5
# a checkpoint lies after another when it is farther from the start by at
# least this fraction of the step between them (siblings: a few per cent)
AFTER_FRACTION = 0.5
# a run's second step is about as long as its first, while runs from one start
# leave it side by side, at a fraction of the first step from each other
OWN_STEP_FRACTION = 2.0 / 3.0
# an end of the seriation this high in its component's range of norms is no
# start that the norms back (development part: one end at most 0.2 % up the
# range where the start is an end; 30-70 % in the components where neither is)
START_NORM_FRACTION = 0.25


def geodesic_progress(D: np.ndarray, root: int, neighbours: np.ndarray) -> np.ndarray:
    """Shortest-path distance from ``root`` over a nearest-neighbour graph.

    ``neighbours`` (N, k) holds each checkpoint's k nearest, closest first.

    Along a run, the path to a later checkpoint passes its predecessors, so
    progress grows along every run, also where a data shift turns the run
    back towards its start. Where the neighbour graph falls apart, the
    minimum spanning tree edges between its pieces join it.
    """
    n = D.shape[0]
    if n == 1:
        return np.zeros(1)
    rows = np.repeat(np.arange(n), neighbours.shape[1])
    cols = neighbours.ravel()
    # the sparse graph reads stored zeros as missing edges; distinct checkpoints have D > 0
    graph = coo_matrix((D[rows, cols], (rows, cols)), shape=(n, n)).tocsr()
    n_pieces, piece = connected_components(graph, directed=False)
    if n_pieces > 1:
        tree, _ = minimum_spanning_tree(np.ascontiguousarray(D))
        joins = np.flatnonzero((tree >= 0) & (piece != piece[np.maximum(tree, 0)]))
        rows = np.concatenate([rows, joins])
        cols = np.concatenate([cols, tree[joins]])
        graph = coo_matrix((D[rows, cols], (rows, cols)), shape=(n, n)).tocsr()
    return dijkstra(graph, directed=False, indices=root)


def _nearest(neighbours: np.ndarray | None, k: int) -> np.ndarray | None:
    """The ``k`` nearest of each checkpoint, from a longer table sorted closest first."""
    return None if neighbours is None else neighbours[:, :k]


class Rooted:
    """Chain covers of one component from one candidate root."""

    def __init__(self, D: np.ndarray, root: int, neighbours: np.ndarray | None):
        """``neighbours``: each node's nearest, closest first, as many as ``cover_width`` of the count."""
        self.D = D
        self.root = root
        self.count = first_step_count(D, root)
        self.progress = geodesic_progress(D, root, _nearest(neighbours, PROGRESS_NEIGHBOURS))
        self.neighbours = _nearest(neighbours, cover_width(self.count))
        self._covers: dict[int, tuple[np.ndarray, float]] = {}
        self._reach_chains: dict[int, np.ndarray] = {}
        self._growing = ChainCovers(D, self.progress, root, self.neighbours) if D.shape[0] > 1 else None

    @property
    def max_chains(self) -> int:
        return self.D.shape[0]

    def cover(self, k: int) -> tuple[np.ndarray, float]:
        """Chain of each node and the cost, for ``k`` chains (at most ``max_chains``)."""
        n = self.D.shape[0]
        if k == n:
            # every checkpoint a run of its own: no steps
            return np.arange(n, dtype=np.int64), 0.0
        if k not in self._covers:
            self._covers[k] = self._growing.cover(k)
        return self._covers[k]

    @cached_property
    def chain_progress(self) -> np.ndarray:
        """Progress the runs' chains rise in (over ``CHAIN_PROGRESS_NEIGHBOURS``)."""
        return geodesic_progress(self.D, self.root, _nearest(self.neighbours, CHAIN_PROGRESS_NEIGHBOURS))

    def reach_chains(self, k: int) -> np.ndarray:
        """The chains of least squared step credited for reach (module docstring, stage 3)."""
        if k == 1 or k == self.D.shape[0]:
            return self.cover(k)[0]
        if k not in self._reach_chains:
            covers = ChainCovers(self.D, self.chain_progress, self.root, self.neighbours, reach=REACH)
            self._reach_chains[k] = covers.cover(k)[0]
        return self._reach_chains[k]

    def runs(self, k: int) -> np.ndarray:
        """Run of each node for ``k`` runs (module docstring, stage 3)."""
        if k == 1 or k == self.D.shape[0]:
            return self.cover(k)[0]
        chain = relink_chains(
            self.D, self.reach_chains(k), self.chain_progress, self.root, self.neighbours, RELINK_WINDOW
        )
        return separate_shared_ends(self.D, chain, self.chain_progress, self.root, RELINK_WINDOW)

    def best_k(self) -> int:
        """The number of runs (module docstring, stage 2).

        The first checkpoint of each run (:func:`first_step_count`).
        """
        return self.count

    def rise(self, k: int) -> float:
        """How quickly distances rise from the root along its runs' chains (see ``rise_from_start``).

        The mean over the chains, each weighed by its checkpoints; from the
        true start of training distances rise fast and flatten, from any other
        candidate they do not. The chains credited for reach: the chains of
        least squared step alone may weave one chain through all the runs.
        """
        chain, progress = self.reach_chains(k), self.chain_progress
        total, weight = 0.0, 0
        for c in range(k):
            members = np.flatnonzero(chain == c)
            members = members[members != self.root]
            if members.shape[0] == 0:
                continue
            path = np.concatenate([[self.root], members[np.argsort(progress[members])]])
            total += rise_from_start(self.D, path) * members.shape[0]
            weight += members.shape[0]
        return total / weight if weight else 0.0


def first_step_count(D: np.ndarray, root: int) -> int:
    """Runs leaving ``root``: its first checkpoints, one per run.

    The checkpoints at most ``FIRST_STEP_RATIO`` times as far from ``root``
    as its nearest one, less those that lie after another of them: a run's
    next checkpoint is a step of its own away (at least ``OWN_STEP_FRACTION``
    of the earlier one's distance from the root) and farther from the root by
    at least ``AFTER_FRACTION`` of that step (training moves away from its
    start), while runs from one start leave it side by side, closer together.
    """
    if D.shape[0] == 1:
        return 1
    distance = D[root].copy()
    distance[root] = np.inf
    near = np.flatnonzero(distance <= FIRST_STEP_RATIO * distance.min())
    near = near[np.argsort(distance[near], kind="stable")]
    firsts = [
        c for i, c in enumerate(near)
        if not any(_lies_after(D, distance, e, c) for e in near[:i])
    ]
    return len(firsts)


def _lies_after(D: np.ndarray, distance: np.ndarray, earlier: int, later: int) -> bool:
    """Whether ``later`` is the next checkpoint of ``earlier``'s run (see :func:`first_step_count`)."""
    step = D[earlier, later]
    own_step = step >= OWN_STEP_FRACTION * distance[earlier]
    return bool(own_step and distance[later] - distance[earlier] >= AFTER_FRACTION * step)


def cover_width(n_runs: int) -> int:
    """Candidate successors per checkpoint in the chain covers of ``n_runs`` runs from one start.

    A run's next checkpoint lies past the same-stage checkpoints of its
    siblings: one candidate more per run, up to ``MAX_SIBLING_NEIGHBOURS``.
    """
    return COVER_NEIGHBOURS + min(n_runs, MAX_SIBLING_NEIGHBOURS)


def _first_steps_point_one_way(D: np.ndarray, root: int, count: int, limit: float) -> bool:
    """Whether no two of the ``count`` checkpoints nearest ``root`` lie over ``limit`` apart, seen from it.

    Runs from one start leave it in about one direction (toy runs:
    siblings' first steps about 18 degrees apart); from a checkpoint in the
    middle of a run, its run goes on both ways (about 155 degrees): the
    seriation's ends are held to ``OPPOSITE_ANGLE``, the least norm off
    them to ``SHARED_START_ANGLE``.
    """
    if count < 2:
        return True
    first = np.argsort(D[root], kind="stable")[1 : count + 1]
    a = D[root, first]
    angles = angle_opposite(a[:, None], a[None, :], D[np.ix_(first, first)])
    return bool(np.nanmax(angles) <= limit)


def rooted_component(D: np.ndarray, norms: np.ndarray | None = None) -> Rooted:
    """The component's start: the candidate the distances rise from the fastest (``rise_from_start``).

    Candidates: both ends of the component's seriation (a checkpoint far from
    its nearest neighbour, once a third candidate, is as often the jump of a
    data shift or a warm-up) and, where the checkpoints' ``norms`` are known
    and neither end lies in the lowest ``START_NORM_FRACTION`` of their range,
    the checkpoint of least norm: training moves the weights' norm one way,
    on the zoo mostly up, so a start at neither end of the seriation (the
    ends of a shifted and an unshifted sibling) still has about the least.
    Such a candidate must be left by several runs: the seriation (with the
    norms) passes through a checkpoint inside one run, and a fine-tune's
    norm may dip where a one-cycle schedule's rate peaks.
    """
    n = D.shape[0]
    neighbours = nearest_neighbours(D, COVER_NEIGHBOURS) if n > 1 else None
    if n < 3:
        return Rooted(D, 0, neighbours)
    # with the norms, a data shift's jump back towards the start leaves the start an end
    order, _ = order_nodes(D, norms=norms)
    ends = (int(order[0]), int(order[-1]))
    starts = dict.fromkeys(ends)
    if norms is not None and _ends_far_from_least_norm(norms, list(ends)):
        starts[int(np.argmin(norms))] = None
    width = cover_width(max(first_step_count(D, start) for start in starts))
    if width > neighbours.shape[1]:
        neighbours = nearest_neighbours(D, width)
    candidates = [Rooted(D, start, neighbours) for start in starts]
    # a checkpoint inside a run (its first checkpoints behind and ahead of it) is no start;
    # nor is the least norm off the seriation's ends unless several runs leave it side by side
    def may_start(c: Rooted) -> bool:
        limit = OPPOSITE_ANGLE if c.root in ends else SHARED_START_ANGLE
        return (c.root in ends or c.count > 1) and _first_steps_point_one_way(D, c.root, c.count, limit)

    candidates = [c for c in candidates if may_start(c)] or candidates
    # ties keep the seriation's own choice of start (the first candidate)
    return max(candidates, key=lambda rooted: rooted.rise(rooted.best_k()))


def _ends_far_from_least_norm(norms: np.ndarray, ends: list[int]) -> bool:
    """Whether every end's norm lies above the lowest ``START_NORM_FRACTION`` of the norms' range."""
    low, high = float(norms.min()), float(norms.max())
    return bool(high > low and min(norms[ends]) > low + START_NORM_FRACTION * (high - low))


def chain_order(component: Rooted, chain: np.ndarray, label: int) -> np.ndarray:
    """The nodes of one chain (the root left out) in training order.

    Seriation of the chain with the root, which fixes its direction.
    """
    D, root = component.D, component.root
    members = np.flatnonzero(chain == label)
    members = members[members != root]
    if members.shape[0] < 2:
        return members
    with_root = np.concatenate([[root], members])
    order = with_root[order_nodes(D[np.ix_(with_root, with_root)])[0]]
    if order[-1] == root:
        order = order[::-1]
    return order[order != root]


def chain_parents(
    component: Rooted,
    orders: list[np.ndarray],
    branches: Sequence[np.ndarray] = (),
    hung: dict[int, int] | None = None,
) -> np.ndarray:
    """Parent of each node of a component, as an index into the component (root: -1).

    ``orders``: each chain's nodes in training order (:func:`chain_order`).
    A checkpoint's parent is the one before it on its chain. Where a chain
    runs back towards the start (one chain through a parent run and its
    fine-tune goes out along one branch and back along the other), the
    checkpoint before is ahead in progress by more than ``AHEAD_FRACTION`` of
    the step between them: such a checkpoint, and each chain's first, hangs
    from the nearest checkpoint clearly behind it (progress lower by at least
    half their distance): the shared start, or the checkpoint a fine-tune
    branched from.

    ``branches`` (fine-tunes cut from the chains, in training order, see
    :func:`wtraj.analysis._branches.split_branches`) follow their own order,
    and each hangs from the checkpoint nearest its first outside it, its
    branch point: progress cannot tell that one, since a fine-tune's first
    checkpoints lie about as far from the start as its branch point. ``hung``
    fixes the parents of some nodes (``Runs.hung``).
    """
    D, progress, root = component.D, component.progress, component.root
    local = np.full(D.shape[0], -1, dtype=np.int64)
    for order in orders:
        if order.shape[0] == 0:
            continue
        local[order[0]] = _nearest_behind(D, progress, root, int(order[0]))
        local[order[1:]] = order[:-1]
    nodes = np.flatnonzero(local >= 0)
    ahead = progress[local[nodes]] - progress[nodes] > AHEAD_FRACTION * D[local[nodes], nodes]
    for node in nodes[ahead]:
        local[node] = _nearest_behind(D, progress, root, int(node))
    outside = np.ones(D.shape[0], dtype=bool)
    for branch in branches:
        outside[branch] = False
        local[branch[0]] = np.flatnonzero(outside)[np.argmin(D[branch[0], outside])]
        local[branch[1:]] = branch[:-1]
        outside[branch] = True
    for node, parent in (hung or {}).items():
        local[node] = parent
    _break_cycles(D, progress, root, local)
    return local


def _nearest_behind(D: np.ndarray, progress: np.ndarray, root: int, node: int) -> int:
    """The nearest checkpoint whose progress is lower than ``node``'s by at least half their distance."""
    behind = progress[node] - progress >= 0.5 * D[node]
    behind[node] = False
    behind[root] = True
    candidates = np.flatnonzero(behind)
    return int(candidates[np.argmin(D[node, candidates])])


def _break_cycles(D: np.ndarray, progress: np.ndarray, root: int, local: np.ndarray) -> None:
    """Hang each checkpoint on a cycle of parents from the nearest checkpoint behind it, in place.

    Parents before a checkpoint on its chain may be slightly ahead of it in
    progress (up to ``AHEAD_FRACTION``); parents behind strictly lower it, so
    replacing a cycle's parents that are ahead ends it, and every pass
    replaces at least one.
    """
    while True:
        state = np.zeros(local.shape[0], dtype=np.int8)  # 0 unseen, 1 on the current walk, 2 done
        cycle = None
        for start in range(local.shape[0]):
            walk, node = [], start
            while node >= 0 and state[node] == 0:
                state[node] = 1
                walk.append(node)
                node = local[node]
            if node >= 0 and state[node] == 1:
                cycle = walk[walk.index(node):]
            state[walk] = 2
            if cycle is not None:
                break
        if cycle is None:
            return
        for node in cycle:
            if progress[local[node]] >= progress[node]:
                local[node] = _nearest_behind(D, progress, root, node)
