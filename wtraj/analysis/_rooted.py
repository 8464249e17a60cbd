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
   ends (:mod:`wtraj.analysis._ends`).

Measurements behind each constant: bench/RESULTS.md, "Analysis constants".
"""

from __future__ import annotations

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
# a chain that jumps by this many of its median steps and then runs back
# towards the start for at least BRANCH_MIN_STEPS steps came back along a
# fine-tune (development part: jumps into fine-tunes 11-93 medians, runs
# back along them 14-60 steps; in single runs a stretch that long came after
# a jump of at most 1.3, a jump as long (a loss spike) before at most 6 steps)
BRANCH_JUMP = 5.0
BRANCH_MIN_STEPS = 8
RETURN_FRACTION = 0.25
# a stretch run back along a branch changes its step smoothly (development
# fine-tunes: 3.9 to 7.3 medians over 14 steps); a last step this many times
# its longest other step left the branch
STRETCH_END_RATIO = 2.0
# a slow fine-tune that a chain runs along between two of its parent's
# checkpoints steps this many times shorter than the parent there (development
# CNN fine-tunes every 5 iterations: 0.01-0.04 against 0.12-0.17)
DETOUR_RATIO = 3.0
# steps on each side of a branch point whose lengths tell which branch goes on
# with the run's own step (a fine-tune's optimizer and cadence change it)
CONSISTENT_STEPS = 3
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


def _first_steps_point_one_way(D: np.ndarray, root: int, count: int) -> bool:
    """Whether no two of the ``count`` checkpoints nearest ``root`` lie on opposite sides of it.

    Runs from one start leave it in about one direction (toy runs:
    siblings' first steps about 18 degrees apart); from a checkpoint in the
    middle of a run, its run goes on both ways (about 155 degrees).
    Opposite: an angle over ``OPPOSITE_ANGLE``.
    """
    if count < 2:
        return True
    first = np.argsort(D[root], kind="stable")[1 : count + 1]
    a = D[root, first]
    angles = angle_opposite(a[:, None], a[None, :], D[np.ix_(first, first)])
    return bool(np.nanmax(angles) <= OPPOSITE_ANGLE)


def rooted_component(D: np.ndarray, norms: np.ndarray | None = None) -> Rooted:
    """The component's start: the candidate the distances rise from the fastest (``rise_from_start``).

    Candidates: both ends of the component's seriation (a checkpoint far from
    its nearest neighbour, once a third candidate, is as often the jump of a
    data shift or a warm-up) and, where the checkpoints' ``norms`` are known
    and neither end lies in the lowest ``START_NORM_FRACTION`` of their range,
    the checkpoint of least norm: training moves the weights' norm one way,
    on the zoo mostly up, so a start at neither end of the seriation (the
    ends of a shifted and an unshifted sibling) still has about the least.
    """
    n = D.shape[0]
    neighbours = nearest_neighbours(D, COVER_NEIGHBOURS) if n > 1 else None
    if n < 3:
        return Rooted(D, 0, neighbours)
    order, _ = order_nodes(D)
    starts = dict.fromkeys([int(order[0]), int(order[-1])])
    if norms is not None and _ends_far_from_least_norm(norms, list(starts)):
        starts[int(np.argmin(norms))] = None
    width = cover_width(max(first_step_count(D, start) for start in starts))
    if width > neighbours.shape[1]:
        neighbours = nearest_neighbours(D, width)
    candidates = [Rooted(D, start, neighbours) for start in starts]
    # a checkpoint inside a run (its first checkpoints behind and ahead of it) is no start
    candidates = [c for c in candidates if _first_steps_point_one_way(D, c.root, c.count)] or candidates
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


def split_branches(component: Rooted, chain: np.ndarray, orders: list[np.ndarray]) -> np.ndarray:
    """The chains, with each fine-tune or parent continuation that a chain also covers made a chain.

    All chains leave the start, so one chain covers a parent run and the
    fine-tunes that branched from its middle. Along one branch it may

    - jump to another's tip and come back along it, towards the start (a
      stretch of at least ``BRANCH_MIN_STEPS`` steps, each lower in progress
      by more than ``AHEAD_FRACTION`` of the step, entered by a jump);
    - jump back to near a branch point and go out along another (a step
      lower in progress that is itself a jump, followed by at least
      ``BRANCH_MIN_STEPS`` steps); the run goes on along the branch that
      keeps the run's step length (:func:`_continuation`);
    - run forwards along a slow fine-tune between two of its parent's
      checkpoints (:func:`_detour`).

    A jump is at least ``BRANCH_JUMP`` times the chain's median step. Each
    piece split off is searched again; pieces shorter than
    ``BRANCH_MIN_STEPS`` rejoin the piece of their nearest checkpoint.

    ``orders``: each chain's nodes in training order (:func:`chain_order`).
    Returns the chain of each node, new chains numbered after the given ones.
    """
    labels = chain.copy()
    label = len(orders)
    for order in orders:
        for branch in _branches(component, order)[1]:
            labels[branch] = label
            label += 1
    return labels


def _branches(component: Rooted, order: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """One chain's own run and the branches it also covers, each in training order."""
    D, progress = component.D, component.progress
    if order.shape[0] < BRANCH_MIN_STEPS + 2:
        return order, []
    steps = D[order[:-1], order[1:]]
    jump = BRANCH_JUMP * float(np.median(steps))
    back = progress[order[:-1]] - progress[order[1:]] > AHEAD_FRACTION * steps
    # stretches run back along a branch: steps [first, stop)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], back.astype(np.int8), [0]])))
    keep = np.ones(order.shape[0], dtype=bool)
    branches = []
    for first, stop in zip(edges[::2], edges[1::2]):
        # the stretch's last checkpoint is back on the run when its nearest
        # checkpoint lower in progress is where the chain left the run, or when
        # the step to it is much longer than every other step of the stretch
        if stop - first > 1 and first > 0 and (
            _nearest_lower(D, progress, int(order[stop])) == order[first - 1]
            or steps[stop - 1] >= STRETCH_END_RATIO * steps[first : stop - 1].max()
        ):
            stop -= 1
        if first > 0 and stop - first >= BRANCH_MIN_STEPS and steps[first - 1] >= jump:
            branches.append(order[first : stop + 1][::-1])
            keep[first : stop + 1] = False
    # jumps back to a branch point, then out along the other branch: split the
    # run and each branch split off until none jumps back
    main, pieces = None, [order[keep]]
    while pieces:
        piece = pieces.pop()
        steps = D[piece[:-1], piece[1:]]
        back = progress[piece[:-1]] - progress[piece[1:]] > RETURN_FRACTION * steps
        returns = np.flatnonzero(back & (steps >= jump))
        returns = returns[piece.shape[0] - 1 - returns > BRANCH_MIN_STEPS]
        if returns.shape[0] == 0:
            detour = _detour(D, piece)
            if detour is not None:
                a, b = detour
                pieces += [np.concatenate([piece[:a], piece[b:]]), piece[a:b]]
            elif main is None and piece[0] == order[0]:
                main = piece
            else:
                branches.append(piece)
            continue
        j = int(returns[0])
        pieces += list(_continuation(component, piece[: j + 1], piece[j + 1 :]))[::-1]
    branches = _join_short(D, main, branches)
    return _turns_to_branches(D, main, branches)


def _turns_to_branches(
    D: np.ndarray, main: np.ndarray, branches: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The run and its branches, with each checkpoint of the run that a branch holds more cheaply moved there.

    A chain that came back along a fine-tune may still pass through the
    fine-tune's first checkpoint between two of its parent's, off the run's
    path. By the chains' own measure, the sum of squared steps
    (:mod:`wtraj.analysis._cover`), a checkpoint of the run whose nearest
    checkpoint lies on a branch belongs there when stepping over it on the
    run and joining it to that nearest costs less than the two steps through
    it: the run turns back there by well over a right angle. It goes to the
    branch before its nearest. No constant is involved.
    """
    branches = list(branches)
    while branches and main.shape[0] >= 3:
        nodes = np.concatenate([main, *branches])
        # -1 for the run's own checkpoints, else the branch each lies on
        owner = np.repeat(np.arange(-1, len(branches)), [main.shape[0], *(b.shape[0] for b in branches)])
        near = D[np.ix_(main[1:-1], nodes)]
        near[np.arange(near.shape[0]), np.arange(1, main.shape[0] - 1)] = np.inf
        nearest = np.argmin(near, axis=1)
        through = D[main[:-2], main[1:-1]] ** 2 + D[main[1:-1], main[2:]] ** 2
        over = D[main[:-2], main[2:]] ** 2 + near[np.arange(near.shape[0]), nearest] ** 2
        cheaper = np.flatnonzero((owner[nearest] >= 0) & (over < through))
        if cheaper.shape[0] == 0:
            break
        i = int(cheaper[0])
        j, target = int(owner[nearest[i]]), nodes[nearest[i]]
        at = int(np.flatnonzero(branches[j] == target)[0])
        branches[j] = np.concatenate([branches[j][:at], [main[i + 1]], branches[j][at:]])
        main = np.delete(main, i + 1)
    return main, branches


def _join_short(D: np.ndarray, main: np.ndarray, branches: list[np.ndarray]) -> list[np.ndarray]:
    """The branches, each shorter than ``BRANCH_MIN_STEPS`` joined to the piece of its nearest checkpoint.

    Every rule above finds branches of at least that many steps; a shorter
    piece is a detour the chain made on its way (a fine-tune's first
    checkpoint visited beside its branch point).
    """
    pieces = [main, *branches]
    while True:
        short = [i for i, p in enumerate(pieces) if i > 0 and p.shape[0] < BRANCH_MIN_STEPS]
        if not short:
            return pieces[1:]
        i = short[0]
        others = np.concatenate([p for j, p in enumerate(pieces) if j != i])
        owner = np.concatenate([np.full(p.shape[0], j) for j, p in enumerate(pieces) if j != i])
        nearest = int(owner[np.argmin(D[np.ix_(pieces[i], others)].min(axis=0))])
        pieces[nearest] = np.concatenate([pieces[nearest], pieces[i]])
        del pieces[i]


def _detour(D: np.ndarray, piece: np.ndarray) -> tuple[int, int] | None:
    """A stretch ``piece[a:b]`` of much shorter steps that the run itself steps over, or None.

    A slow fine-tune (a small learning rate, a fine checkpoint cadence) that
    the chain runs along forwards between two checkpoints of its parent: its
    steps are at least ``DETOUR_RATIO`` times shorter than the run's before
    it, and from the checkpoint before it the run's next step (to the one
    after it) and the ``CONSISTENT_STEPS`` after that are each within
    ``DETOUR_RATIO`` of the run's median step before it. A learning rate
    dropped within one run also shortens the steps, but for good: none come
    back to the earlier length.
    """
    steps = D[piece[:-1], piece[1:]]
    n, width = piece.shape[0], CONSISTENT_STEPS
    bound = np.log(DETOUR_RATIO)
    for a in range(width + 1, n - BRANCH_MIN_STEPS - width):
        # steps[a - 1] enters piece[a]
        typical = float(np.median(steps[a - 1 - width : a - 1]))
        if steps[a - 1] * DETOUR_RATIO > typical:
            continue
        # the stretch of short steps: piece[a:b]
        longer = np.flatnonzero(steps[a:] * DETOUR_RATIO > typical)
        if longer.shape[0] == 0:
            continue
        b = a + 1 + int(longer[0])
        if b - a < BRANCH_MIN_STEPS or b + width >= n:
            continue
        after = piece[np.r_[a - 1, b : b + width + 1]]
        if np.all(np.abs(np.log(D[after[:-1], after[1:]] / typical)) <= bound):
            return a, b
    return None


def _continuation(component: Rooted, head: np.ndarray, tail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a chain that jumped back to a branch point into its run and the branch.

    ``tail`` starts one step of the run's own away from a checkpoint of
    ``head``, the branch point: the checkpoint from which the tail's first
    steps keep the length of the steps before it (:func:`_step_mismatch`;
    a fine-tune's optimizer and cadence change it, which is also why the
    nearest checkpoint will not do: a slow fine-tune's checkpoints crowd
    round its branch point). The run goes on from there along whichever of
    the tail and the rest of the head keeps that length better.
    """
    D = component.D
    path = np.concatenate([[component.root], head])
    candidates = range(CONSISTENT_STEPS + 1, path.shape[0] - 1)
    if not candidates:
        return head, tail
    before = {i: path[i - CONSISTENT_STEPS : i + 1] for i in candidates}
    i = min(candidates, key=lambda i: _step_mismatch(D, before[i], np.concatenate([[path[i]], tail])))
    by_tail = _step_mismatch(D, before[i], np.concatenate([[path[i]], tail]))
    by_head = _step_mismatch(D, before[i], path[i:])
    # a remainder of the head too short to show its steps is a detour
    if path.shape[0] - i <= CONSISTENT_STEPS or by_tail < by_head:
        return np.concatenate([path[1 : i + 1], tail]), path[i + 1 :]
    return head, tail


def _step_mismatch(D: np.ndarray, before: np.ndarray, after: np.ndarray) -> float:
    """How far the steps through a checkpoint keep the length of the steps before it.

    ``before`` ends at the checkpoint, ``after`` starts at it. The largest
    absolute log ratio to the median step of ``before`` of: its last step
    (the step into the checkpoint), the first step of ``after`` and the
    median of up to ``CONSISTENT_STEPS`` steps of ``after``.
    """
    steps_before = D[before[:-1], before[1:]]
    typical = float(np.median(steps_before))
    after = after[: CONSISTENT_STEPS + 1]
    steps = D[after[:-1], after[1:]]
    ratios = np.array([steps_before[-1], steps[0], float(np.median(steps))]) / typical
    return float(np.abs(np.log(ratios)).max())


def chain_parents(component: Rooted, orders: list[np.ndarray]) -> np.ndarray:
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
    _break_cycles(D, progress, root, local)
    return local


def _nearest_lower(D: np.ndarray, progress: np.ndarray, node: int) -> int:
    """The nearest checkpoint of lower progress than ``node`` (``node`` is not the root)."""
    lower = np.flatnonzero(progress < progress[node])
    return int(lower[np.argmin(D[node, lower])])


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
