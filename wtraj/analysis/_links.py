"""Stage 1 of run separation: the edges of the minimum spanning tree that join different starts.

Runs from different initialisations meet, in the minimum spanning tree of
the checkpoints, through an edge between their starts: a long edge from
which the steps shrink on both sides (training steps shrink as a run
converges). An edge is cut when the runs leaving its two ends (each end's
shortest other tree edge, then the longest branch) have their first
``RATIO_STEPS`` steps all shorter than the edge by ``LINK_RATIO`` and their
first ``TREND_STEPS`` steps shrinking (Mann-Kendall trend within phases
pooled, or within the first phase alone: after a data shift a run's steps
may grow again), or when it is ``GAP_RATIO`` times longer than those steps
and than every step of the runs on either side (a plain gap). The walk
counts only steps that take it away from the edge: from a start shared by
several runs it may hop sideways between siblings. A data shift also makes a
long edge, but before it the steps shrink *towards* it, so it is not cut;
nor is an edge at a checkpoint that another branch of its run leaves with
steps that grow (the middle of a run). Measurements behind each constant:
bench/RESULTS.md, "Analysis constants".
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wtraj.analysis._direction import LOG_PHASE_JUMP, segmented_trend_z
from wtraj.analysis._tree import minimum_spanning_tree, tree_adjacency

# a link is longer than the first steps beside it by this factor
LINK_RATIO = 2.0
# a gap this many times the steps beside it separates runs whatever the steps do
GAP_RATIO = 10.0
# steps read on each side of a candidate link for the trend test
TREND_STEPS = 10
# first steps on each side that a link must be longer than (a later data
# shift may make a longer step)
RATIO_STEPS = 3
# a step of the walk beside a candidate link counts when it takes the walk at
# least this fraction of its length further from the link (not a sibling hop)
AWAY_FRACTION = 0.5


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


def connected_parts(n: int, neighbour: np.ndarray, keep: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(keep & (neighbour >= 0))
    graph = coo_matrix((np.ones(rows.shape[0]), (rows, neighbour[rows])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    return component


