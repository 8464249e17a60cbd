"""Tell training runs apart, also runs that share their initialisation.

Runs from one initialisation (or fine-tunes of one parent) share their first
checkpoints exactly and stay close for a while, so clustering the distances
puts their early checkpoints together and fails (adjusted Rand index ~ 0 on
real runs). wtraj separates runs in three stages.

1. **Runs from different initialisations** meet, in the minimum spanning tree
   of the checkpoints, through an edge between their starts: a long edge
   from which the steps shrink on both sides (training steps shrink as a run
   converges). An edge is cut when the runs leaving its two ends (each end's
   shortest other tree edge, then the longest branch) have their first
   ``RATIO_STEPS`` steps all shorter than the edge by ``LINK_RATIO`` and their
   first ``TREND_STEPS`` steps shrinking (Mann-Kendall trend within phases
   pooled, or within the first phase alone: after a data shift a run's steps
   may grow again), or when it is ``GAP_RATIO`` times longer than those steps
   and than every step of the runs on either side (a plain gap). The walk
   counts only steps that take it away from the edge: from a start shared by
   several runs it may hop sideways between siblings. A data shift also
   makes a long edge, but before it the steps shrink *towards* it, so it is
   not cut; nor is an edge at a checkpoint that another branch of its run
   leaves with steps that grow (the middle of a run).
2. **How many runs share a start** (one component), and which checkpoint is
   the start. Runs from one start leave it with first steps of about one
   length, while a run's second checkpoint lies about twice as far out,
   however long its steps become later: ``k`` is the number of checkpoints
   within ``FIRST_STEP_RATIO`` times the start's shortest first step. The
   root is, among both ends of the component's seriation
   (:func:`wtraj.analysis.ordering.order_nodes`) and the checkpoint farthest
   from its nearest neighbour, the one from which steps shrink the most
   (pooled Mann-Kendall trend of step length) along its runs' chains of
   stage 3 (before the relinking); a candidate whose first checkpoints lie
   on opposite sides of it (more than ``OPPOSITE_ANGLE`` apart) is inside a
   run and is passed over. The chain covers are solved in
   :mod:`wtraj.analysis._cover`.
3. **The runs themselves** are ``k`` chains from that root in two steps.
   First the chains of least squared step again, but each credited ``REACH``
   times the squared distance from the root at which it ends, and rising in
   progress over ``CHAIN_PROGRESS_NEIGHBOURS`` neighbours: without the
   credit, ending a chain early and carrying its run's later checkpoints on
   a sibling's chain, two per epoch, may cost less. These chains have one
   checkpoint per stage of training but may swap runs: in the first epochs
   runs from one start are closer to each other than to their own next
   checkpoint. Then :mod:`wtraj.analysis._relink` reassigns checkpoints and
   continuations between the chains, position by position, to the least
   total squared distance over all pairs up to ``RELINK_WINDOW`` positions
   apart on a chain: the offset each run takes early persists, and summed
   over many later checkpoints it shows whose continuation is whose.

Limitations (measured, bench/RESULTS.md; ``python bench/analysis_quality.py
--repeats 8``): on the toy runs, runs from different initialisations (with
or without a data shift or a learning-rate step) are separated exactly in
all 8 seed sets, as are 2 and 3 runs from one initialisation, alone or
beside two runs of other initialisations; of 5, one first checkpoint goes
to a sibling in 1 of 8 (ARI 0.96). The relinking needs the runs to reach
each stage of training at the same position on their chains, as runs from
one start with one checkpoint schedule do. Runs from one start that end at
different points are mixed near the end of the shorter one (epochs 25, 25
and 15: ARI 0.81 to 0.84), since the credit for reach carries its chain on
into a longer run's last checkpoints; so are runs from one start where one
has a data shift (ARI 0.64 to 0.84; rotated images 0.52 to 0.82, and 0.12
once with the number of runs given: the jump breaks the progress order of
its chain); runs from one start that all have
their learning rate cut reach 1.0 in 6 of 8 seed sets, 0.82 and 0.88 in
the others. Runs from one start whose first steps differ by more than
``FIRST_STEP_RATIO`` (different learning rates), or runs whose second
checkpoint lies within that ratio of the start's first step (a long
warm-up), are miscounted. A fine-tune started from a checkpoint in the
middle of a parent run whose checkpoints are also given is not told apart
from its parent (one run, adjusted Rand index 0 on the toy runs): every
chain leaves the root, and a checkpoint has at most one successor. Large
groups of runs from one start (synthetic runs, one drift and their own
noise, ``python bench/shared_start_groups.py``): 3 to 50 runs of 40 to
2,000 checkpoints are separated with ARI 0.98 to 1.0, and N = 10,000
checkpoints (10 runs of 1,000, or 50 of 200) take 11 to 25 s on 2 cores.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from wtraj.analysis._cover import ChainCovers
from wtraj.analysis._distances import Nodes, distance_matrix, distinct_nodes, require_nodes
from wtraj.analysis._relink import relink_chains
from wtraj.analysis._tour import nearest_neighbours
from wtraj.analysis._tree import minimum_spanning_tree, tree_adjacency
from wtraj.analysis.ordering import LOG_PHASE_JUMP, order_nodes, segmented_trend_z

# a link between runs is at least this many times longer than the first steps beside it
# (measured on the toy runs: links 2.5x, steps next to a link within a shared start 1.2x)
LINK_RATIO = 2.0
# a gap this many times longer than the steps beside it separates runs
# whatever the steps do (no data shift measured on the toy runs exceeds 3x)
GAP_RATIO = 10.0
# steps read on each side of a candidate link for the trend test
TREND_STEPS = 10
# first steps on each side that a link must be longer than (a later data
# shift may make a longer step)
RATIO_STEPS = 3
# a step of the walk beside a candidate link counts when it takes the walk at least
# this fraction of its length further from the link (toy runs, 3 runs from one
# start: sibling hops 0.4, forward steps 1.5 to 2.1 of which ~all away)
AWAY_FRACTION = 0.5
# first steps of runs from one start at a wider angle than this lie on opposite
# sides of it: the candidate is inside a run (toy runs: siblings' first steps
# ~18 degrees apart, a run's steps before and after a checkpoint ~155)
OPPOSITE_ANGLE = np.radians(120.0)
# neighbours that define progress (geodesic distance from the root)
PROGRESS_NEIGHBOURS = 3
# candidate successors per checkpoint in the chain cover, besides one per run
# from the same start (cover_width): enough to reach the next checkpoint of
# the same run past the same-time checkpoints of its siblings (synthetic runs
# from one start, 20 runs of 40 checkpoints: 53 of 760 steps of a run missing
# among 20 neighbours, adjusted Rand index 0.64; none among 40, 1.0)
COVER_NEIGHBOURS = 20
# most extra candidates for siblings: bounds the neighbour table (N x 220)
MAX_SIBLING_NEIGHBOURS = 200
# the runs' chains rise in geodesic progress over this many neighbours: over 3,
# a run's progress may dip below its previous checkpoint's late in training,
# where a sibling offers a shorter path, which forbids the run's own step
# (toy runs, 16 seed sets: 3 runs from one start mixed in 1 over 3 neighbours,
# in none over 10)
CHAIN_PROGRESS_NEIGHBOURS = 10
# credit per squared distance from the start at which a run's chain ends
# (wtraj.analysis._cover; toy runs, 16 seed sets of 3 to 5 runs from one
# start: mixed in 2 to 6 sets at 0.03, in none from 0.1 to 1)
REACH = 0.3
# pairs of checkpoints at most this many positions apart on a chain decide
# which continuation is whose (wtraj.analysis._relink): the offset a run takes
# in its first epoch shows only summed over many later checkpoints (toy runs,
# 16 seed sets of 5 runs from one start: one first checkpoint swapped in 4
# sets at 4, in 2 at 8, in 1 at 16)
RELINK_WINDOW = 16
# runs that share a start leave it with first steps of about one length
# (measured on the toy runs: within 1.02x of each other); a chain that starts
# at a run's second checkpoint starts about 2.3x as far out
FIRST_STEP_RATIO = 1.5


def _check_count(n_trajectories: Any, n_rows: int) -> int | None:
    if n_trajectories is None:
        return None
    if isinstance(n_trajectories, bool) or not isinstance(n_trajectories, (int, np.integer)):
        raise TypeError(f"n_trajectories must be an int or None; got {type(n_trajectories).__name__}.")
    if not 1 <= n_trajectories <= n_rows:
        raise ValueError(
            f"n_trajectories must lie between 1 and the number of checkpoints ({n_rows}); "
            f"got {n_trajectories}."
        )
    return int(n_trajectories)


def _run_steps(
    adjacency: list[list[int]], D: np.ndarray, start: int, away_from: int, limit: float
) -> np.ndarray:
    """Up to ``TREND_STEPS`` steps of the run that leaves ``start`` on the side away from ``away_from``.

    The run's first step is ``start``'s shortest other tree edge; from there
    the walk follows the longest branch (in hops) of the tree, without
    crossing edges of ``limit`` or longer (links to further runs; a link
    candidate's steps must be shorter than that anyway).
    """
    branches = _branches(adjacency, D, start, away_from)
    if not branches:
        return np.empty(0)
    return _branch_steps(adjacency, D, start, branches[0], limit)


def _branches(adjacency: list[list[int]], D: np.ndarray, start: int, away_from: int) -> list[int]:
    """``start``'s tree neighbours other than ``away_from``, shortest edge first (its run's first step)."""
    return sorted((w for w in adjacency[start] if w != away_from), key=lambda w: (D[start, w], w))


def _grows_on_another_branch(
    adjacency: list[list[int]], D: np.ndarray, start: int, away_from: int, limit: float
) -> bool:
    """Whether a branch at ``start`` other than its run's (and the link's) has steps that grow.

    Then ``start`` lies in the middle of a run, the steps growing back towards
    the run's start: the checkpoints after a data shift may lie closest to a
    checkpoint some epochs before the shift, whose run's steps then shrink
    forward, towards the shift, as a start's would.
    """
    tiny = np.finfo(float).tiny
    # edges of ``limit`` or longer lead to further runs, as in the walk
    return any(
        _grows(np.log(np.maximum(_branch_steps(adjacency, D, start, w, limit), tiny)))
        for w in _branches(adjacency, D, start, away_from)[1:]
        if D[start, w] < limit
    )


def _branch_steps(
    adjacency: list[list[int]], D: np.ndarray, start: int, first: int, limit: float
) -> np.ndarray:
    """Up to ``TREND_STEPS`` steps from ``start`` through ``first``, then the longest branch."""
    parent = {first: start}
    order = [first]
    for u in order:
        for w in adjacency[u]:
            if w != parent[u] and D[u, w] < limit:
                parent[w] = u
                order.append(w)
    height = dict.fromkeys(order, 0)
    deepest_child: dict[int, int] = {}
    for u in reversed(order[1:]):
        p = parent[u]
        if height[u] + 1 > height[p]:
            height[p] = height[u] + 1
            deepest_child[p] = u
    steps = [D[start, first]]
    last = u = first
    while u in deepest_child and len(steps) < TREND_STEPS:
        w = deepest_child[u]
        # from a start shared by several runs the branch may hop sideways between
        # siblings at one stage of training; a step is measured from the last
        # checkpoint that the walk left moving away from the start
        if D[start, w] - D[start, last] >= AWAY_FRACTION * D[last, w]:
            steps.append(D[last, w])
            last = w
        u = w
    return np.asarray(steps)


def find_links(D: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Minimum spanning tree edges ``(i, neighbour[i])`` that join runs of different starts.

    Returns
    -------
    is_link : ndarray, shape (N,), bool
        True where the tree edge of node ``i`` is a link between runs.
    neighbour : ndarray, shape (N,), int64
        The tree (see :func:`wtraj.analysis._tree.minimum_spanning_tree`).
    adjacency : list of list of int
    """
    neighbour, length = minimum_spanning_tree(np.ascontiguousarray(D))
    adjacency = tree_adjacency(neighbour)
    is_link = np.zeros(D.shape[0], dtype=bool)
    tiny = np.finfo(float).tiny
    for i in range(1, D.shape[0]):
        j = int(neighbour[i])
        # cheap test first: longer than each end's own first step (shortest other edge)
        if any(
            len(adjacency[a]) < 2 or length[i] < LINK_RATIO * min(D[a, w] for w in adjacency[a] if w != b)
            for a, b in ((i, j), (j, i))
        ):
            continue
        sides = [
            _run_steps(adjacency, D, i, j, length[i] / LINK_RATIO),
            _run_steps(adjacency, D, j, i, length[i] / LINK_RATIO),
        ]
        if any(steps.shape[0] == 0 for steps in sides):
            continue
        largest_step = max(steps[:RATIO_STEPS].max() for steps in sides)
        if length[i] >= GAP_RATIO * largest_step:
            # a plain gap also beyond the steps beside it: after a learning-rate
            # cut, runs from one start end in tight clusters whose distance is
            # many of their last steps but less than their earlier steps
            is_link[i] = all(
                length[i] >= GAP_RATIO * _longest_step_beside(adjacency, D, a, b, length[i] / LINK_RATIO)
                for a, b in ((i, j), (j, i))
            )
        elif length[i] >= LINK_RATIO * largest_step and all(s.shape[0] >= 3 for s in sides):
            is_link[i] = all(_shrinks(np.log(np.maximum(s, tiny))) for s in sides) and not any(
                _grows_on_another_branch(adjacency, D, a, b, length[i] / LINK_RATIO)
                for a, b in ((i, j), (j, i))
            )
    return is_link, neighbour, adjacency


def _longest_step_beside(
    adjacency: list[list[int]], D: np.ndarray, start: int, away_from: int, limit: float
) -> float:
    """The longest tree edge reached from ``start`` (away from ``away_from``) over edges below ``limit``.

    The longest step of the run (or runs from one start) on that side of a
    candidate link; edges of ``limit`` or longer lead to further runs.
    """
    longest = 0.0
    seen = {start, away_from}
    stack = [start]
    while stack:
        u = stack.pop()
        for w in adjacency[u]:
            if w not in seen and D[u, w] < limit:
                seen.add(w)
                stack.append(w)
                longest = max(longest, D[u, w])
    return longest


def _grows(log_steps: np.ndarray) -> bool:
    """Whether log steps (n >= 3) grow within phases."""
    return log_steps.shape[0] >= 3 and segmented_trend_z(log_steps) > 0


def _shrinks(log_steps: np.ndarray) -> bool:
    """Whether log steps (n,) shrink within phases, or over their first phase.

    A run shrinks its steps from its start until a data shift or a
    learning-rate step starts a new phase, whose steps may grow for a while
    (a run relearning inverted images), so the first phase alone may tell a
    start. The walk from a start shared by several runs may hop between them
    (a jump down, then up) and cut its first phase short; there the phases
    pooled tell it.
    """
    if segmented_trend_z(log_steps) < 0:
        return True
    jumps = np.flatnonzero(np.abs(np.diff(log_steps)) > LOG_PHASE_JUMP)
    first_phase = log_steps if jumps.shape[0] == 0 else log_steps[: jumps[0] + 1]
    return first_phase.shape[0] >= 3 and segmented_trend_z(first_phase) < 0


def _components(n: int, neighbour: np.ndarray, keep: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(keep & (neighbour >= 0))
    graph = coo_matrix((np.ones(rows.shape[0]), (rows, neighbour[rows])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    return component


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
        return relink_chains(
            self.D, self.reach_chains(k), self.chain_progress, self.root, self.neighbours, RELINK_WINDOW
        )

    def best_k(self) -> int:
        """The number of runs (module docstring, stage 2).

        The first checkpoint of each run (:func:`first_step_count`).
        """
        return self.count

    def trend(self, k: int) -> float:
        """Mann-Kendall z of log step length along the chains, from the root (negative: shrinking).

        The chains credited for reach: the chains of least squared step alone
        may weave one chain through all the runs and leave the others a
        single checkpoint each (runs from one start after a learning-rate cut).
        """
        chain, progress = self.reach_chains(k), self.chain_progress
        s_total, variance_total = 0.0, 0.0
        for c in range(k):
            members = np.flatnonzero(chain == c)
            members = members[members != self.root]
            path = np.concatenate([[self.root], members[np.argsort(progress[members])]])
            steps = np.log(np.maximum(self.D[path[:-1], path[1:]], np.finfo(float).tiny))
            z = segmented_trend_z(steps)
            # weigh each chain's z by its standard deviation under no trend
            n = steps.shape[0]
            sd = np.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
            s_total += z * sd
            variance_total += sd**2
        return s_total / np.sqrt(variance_total) if variance_total > 0 else 0.0


def first_step_count(D: np.ndarray, root: int) -> int:
    """Checkpoints at most ``FIRST_STEP_RATIO`` times as far from ``root`` as its nearest one."""
    if D.shape[0] == 1:
        return 1
    first_steps = np.delete(D[root], root)
    return int(np.count_nonzero(first_steps <= FIRST_STEP_RATIO * first_steps.min()))


def cover_width(n_runs: int) -> int:
    """Candidate successors per checkpoint in the chain covers of ``n_runs`` runs from one start.

    A run's next checkpoint lies past the same-stage checkpoints of its
    siblings: one candidate more per run, up to ``MAX_SIBLING_NEIGHBOURS``.
    """
    return COVER_NEIGHBOURS + min(n_runs, MAX_SIBLING_NEIGHBOURS)


def _first_steps_point_one_way(D: np.ndarray, root: int, count: int) -> bool:
    """Whether no two of the ``count`` checkpoints nearest ``root`` lie on opposite sides of it.

    Runs from one start leave it in about one direction (toy runs: first
    steps 1.5 to 2.2, siblings 0.4 apart, cosine ~0.95); from a checkpoint
    in the middle of a run, its run goes on both ways (cosine ~-0.9).
    Opposite: an angle over ``OPPOSITE_ANGLE``.
    """
    if count < 2:
        return True
    first = np.argsort(D[root], kind="stable")[1 : count + 1]
    a = D[root, first]
    cosine = (a[:, None] ** 2 + a[None, :] ** 2 - D[np.ix_(first, first)] ** 2) / (2 * np.outer(a, a))
    return bool(cosine.min() >= np.cos(OPPOSITE_ANGLE))


def rooted_component(D: np.ndarray) -> Rooted:
    """The component's start: the candidate the chains' steps shrink from the most.

    Candidates: both ends of the component's seriation and the checkpoint
    farthest from its nearest neighbour.
    """
    n = D.shape[0]
    neighbours = nearest_neighbours(D, COVER_NEIGHBOURS) if n > 1 else None
    if n < 3:
        return Rooted(D, 0, neighbours)
    order, _ = order_nodes(D)
    # where runs share a start, their seriation may zigzag between them and
    # miss the start; the start is also the checkpoint farthest from its
    # nearest neighbour (the first step of training is among the longest)
    isolated = int(np.argmax(D[np.arange(n), neighbours[:, 0]]))
    starts = dict.fromkeys([int(order[0]), int(order[-1]), isolated])
    width = cover_width(max(first_step_count(D, start) for start in starts))
    if width > neighbours.shape[1]:
        neighbours = nearest_neighbours(D, width)
    candidates = [Rooted(D, start, neighbours) for start in starts]
    # a checkpoint inside a run (its first checkpoints behind and ahead of it) is no start
    candidates = [c for c in candidates if _first_steps_point_one_way(D, c.root, c.count)] or candidates
    # ties keep the seriation's own choice of start (the first candidate)
    return min(candidates, key=lambda rooted: rooted.trend(rooted.best_k()))


def _split(D: np.ndarray, n_trajectories: int | None):
    """Components, their chain counts and chain labels for distinct checkpoints."""
    n = D.shape[0]
    is_link, neighbour, _ = find_links(D)
    if n_trajectories is not None and is_link.sum() + 1 > n_trajectories:
        # fewer runs asked for than starts found: keep only the longest links
        links = np.flatnonzero(is_link)
        lengths = D[links, neighbour[links]]
        keep_links = links[np.argsort(-lengths, kind="stable")[: n_trajectories - 1]]
        is_link = np.zeros(n, dtype=bool)
        is_link[keep_links] = True
    component_of = _components(n, neighbour, ~is_link)
    members = [np.flatnonzero(component_of == c) for c in range(component_of.max() + 1)]
    # one component (all runs from one start) shares D instead of copying N x N floats
    components = [rooted_component(D if len(members) == 1 else D[np.ix_(m, m)]) for m in members]
    if n_trajectories is None:
        counts = [c.best_k() for c in components]
    else:
        counts = _allocate(components, n_trajectories)
    return members, components, counts


def _allocate(components: list[Rooted], n_trajectories: int) -> list[int]:
    """Share ``n_trajectories`` chains among components, each extra one where it saves most."""
    counts = [1] * len(components)
    while sum(counts) < n_trajectories:
        savings = [
            c.cover(k)[1] - c.cover(k + 1)[1] if k < c.max_chains else -np.inf
            for c, k in zip(components, counts)
        ]
        best = int(np.argmax(savings))
        if not np.isfinite(savings[best]):
            raise ValueError(
                f"n_trajectories={n_trajectories} is more runs than the "
                f"{sum(c.D.shape[0] for c in components)} distinct checkpoints can form."
            )
        counts[best] += 1
    return counts


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Labels 0 .. k-1 in order of each label's first row."""
    values, first = np.unique(labels, return_index=True)
    rank = np.empty(values.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(values.shape[0])
    return rank[np.searchsorted(values, labels)]


def separate_nodes(D: np.ndarray, n_trajectories: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Run labels and tree parents (roots: -1) of distinct checkpoints."""
    members, components, counts = _split(D, n_trajectories)
    n = D.shape[0]
    labels = np.empty(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    offset = 0
    for m, component, k in zip(members, components, counts):
        chain = component.runs(k)
        labels[m] = offset + chain
        local = _chain_parents(component, chain)
        parent[m] = np.where(local >= 0, m[np.maximum(local, 0)], -1)
        offset += k
    return _renumber(labels), parent


def _chain_parents(component: Rooted, chain: np.ndarray) -> np.ndarray:
    """Parent of each node of a component, as an index into the component (root: -1).

    Each chain is put in training order by seriation (with the root, which
    fixes its direction); a chain's first checkpoint hangs from the nearest
    checkpoint clearly behind it (progress lower by at least half their
    distance): the shared start, or the checkpoint a fine-tune branched from.
    """
    D, progress, root = component.D, component.progress, component.root
    local = np.full(D.shape[0], -1, dtype=np.int64)
    for c in np.unique(chain):
        members = np.flatnonzero(chain == c)
        members = members[members != root]
        if members.shape[0] == 0:
            continue
        with_root = np.concatenate([[root], members])
        if with_root.shape[0] >= 3:
            order = with_root[order_nodes(D[np.ix_(with_root, with_root)])[0]]
            if order[-1] == root:
                order = order[::-1]
            order = order[order != root]
        else:
            order = members
        head = int(order[0])
        behind = progress[head] - progress >= 0.5 * D[head]
        behind[head] = False
        behind[root] = True
        candidates = np.flatnonzero(behind)
        local[head] = int(candidates[np.argmin(D[head, candidates])])
        local[order[1:]] = order[:-1]
    return local


def _prepare(X, n_trajectories, metric, question) -> tuple[Nodes, int | None]:
    D = distance_matrix(X, metric)
    n_trajectories = _check_count(n_trajectories, D.shape[0])
    nodes = distinct_nodes(D)
    require_nodes(nodes, 2, question)
    if n_trajectories is not None and n_trajectories > nodes.D.shape[0]:
        raise ValueError(
            f"n_trajectories={n_trajectories} but only {nodes.D.shape[0]} of the "
            f"{nodes.n_rows} checkpoints are distinct."
        )
    return nodes, n_trajectories


def separate_trajectories(
    X: Any, n_trajectories: int | None = None, *, metric: str = "euclidean"
) -> np.ndarray:
    """Label each checkpoint with the training run it belongs to.

    Parameters
    ----------
    X : array_like, path, checkpoint set or ndarray of shape (N, N)
        Checkpoints of one or more runs, in any order and in any form
        :func:`wtraj.pairwise` accepts, or their distance matrix with
        ``metric="precomputed"``.
    n_trajectories : int, optional
        Number of runs; inferred when None (see :mod:`wtraj.analysis.separation`).
    metric : str
        ``"euclidean"`` (default), another :func:`wtraj.pairwise` metric, or
        ``"precomputed"``.

    Returns
    -------
    ndarray, shape (N,), int64
        Run labels ``0 .. k-1``, numbered in order of each run's first row.
        A checkpoint shared by several runs (identical rows, such as the
        common initialisation) goes to one of them; identical rows share a label.

    Notes
    -----
    Time: O(N^2) for the tree and neighbour lists, the seriation of each
    group of runs that share a start (O(N^2 log N)), for ``k`` runs in such
    a group ``k`` sparse shortest paths per chain cover (O(k N K log N), with
    K = 20 + k candidate successors, at most 220) for three candidate starts
    and the runs, then sweeps of small matchings over the positions of its
    chains (O(N K W^2) each, W = ``RELINK_WINDOW``).
    Memory: the N x N matrix. Deterministic.

    Raises
    ------
    ValueError
        ``n_trajectories`` outside ``[1, N]`` or above the number of distinct
        checkpoints, fewer than 2 distinct checkpoints, or a bad distance matrix.
    TypeError
        ``n_trajectories`` is not an int.
    """
    nodes, n_trajectories = _prepare(X, n_trajectories, metric, "separate_trajectories")
    labels, _ = separate_nodes(nodes.D, n_trajectories)
    return labels[nodes.node_of]


def trajectory_tree(X: Any, n_trajectories: int | None = None, *, metric: str = "euclidean") -> np.ndarray:
    """Parent of each checkpoint in the tree of training runs (-1 at roots).

    Along a run, a checkpoint's parent is the previous checkpoint of that run;
    the first checkpoint of a run that shares a start hangs from the shared
    start, or from the checkpoint it branched from (the nearest checkpoint
    clearly behind it in progress). Each start of its own (a run from a
    different initialisation) is a root.

    Parameters
    ----------
    X, n_trajectories, metric
        As in :func:`separate_trajectories`.

    Returns
    -------
    ndarray, shape (N,), int64
        Row index of each row's parent, -1 for roots. Identical rows: the
        first is the tree node, the others have it as parent.
    """
    nodes, n_trajectories = _prepare(X, n_trajectories, metric, "trajectory_tree")
    _, parent = separate_nodes(nodes.D, n_trajectories)
    return expand_parents(nodes, parent)


def expand_parents(nodes: Nodes, parent: np.ndarray) -> np.ndarray:
    """Parents of rows from parents of distinct nodes (duplicates hang from their first row)."""
    rows_parent = np.where(parent >= 0, nodes.representative[np.maximum(parent, 0)], -1)
    result = rows_parent[nodes.node_of]
    duplicate = np.arange(nodes.n_rows) != nodes.representative[nodes.node_of]
    result[duplicate] = nodes.representative[nodes.node_of[duplicate]]
    return result.astype(np.int64)
