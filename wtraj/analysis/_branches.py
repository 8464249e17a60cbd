"""The last step of run separation: fine-tunes that one chain also covers, cut into runs of their own.

Every chain of a component leaves its start, so a single chain may run
through a parent run and the fine-tunes that branched from its middle
(:func:`split_branches`). Measurements behind each constant:
bench/RESULTS.md, "Analysis constants".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wtraj.analysis._rooted import AHEAD_FRACTION, Rooted

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


class Runs(NamedTuple):
    """The runs of one component once fine-tunes are cut from the chains (:func:`split_branches`).

    Attributes
    ----------
    labels : ndarray
        Run of each node: the chains' own, then one per branch.
    mains : list of ndarray
        Each chain's own run, in training order.
    branches : list of ndarray
        Each branch cut from a chain, in training order.
    hung : dict
        Node -> the checkpoint it hangs from, for the first checkpoint of each
        short piece joined to another run's (a detour the chain made):
        within its run it follows no checkpoint.
    """

    labels: np.ndarray
    mains: list[np.ndarray]
    branches: list[np.ndarray]
    hung: dict[int, int]


def split_branches(component: Rooted, chain: np.ndarray, orders: list[np.ndarray]) -> Runs:
    """The chains, with each fine-tune or parent continuation that a chain also covers made a chain.

    All chains leave the start, so one chain covers a parent run and the
    fine-tunes that branched from its middle. Along one branch it may

    - jump to another's tip and come back along it, towards the start (a
      stretch of at least ``BRANCH_MIN_STEPS`` steps, each lower in progress
      by more than ``AHEAD_FRACTION`` of the step, entered by a jump or by a
      jump and a shorter walk out to the tip; a stretch a short walk after
      the last one cut goes on along the same branch: :func:`_entry`);
    - jump back to near a branch point and go out along another (a step
      lower in progress that is itself a jump, followed by at least
      ``BRANCH_MIN_STEPS`` steps); the run goes on along the branch that
      keeps the run's step length (:func:`_continuation`);
    - run forwards along a slow fine-tune between two of its parent's
      checkpoints, or along any fine-tune that led nowhere (the parent's
      next checkpoint no nearer its end), or weave between the two
      (:func:`_detour`).

    A jump is at least ``BRANCH_JUMP`` times the chain's median step. Each
    piece split off is searched again; pieces shorter than
    ``BRANCH_MIN_STEPS`` rejoin the piece of their nearest checkpoint
    (:func:`_join_short`). Last, checkpoints of the run go to a branch
    where it holds them more cheaply (:func:`_turns_to_branches`) or where
    they are its first, crowding its branch point
    (:func:`_slow_starts_to_branches`).

    ``orders``: each chain's nodes in training order (:func:`wtraj.analysis._rooted.chain_order`).
    The new chains are numbered after the given ones.
    """
    labels = chain.copy()
    mains, all_branches, hung = [], [], {}
    for order in orders:
        main, branches, joined = _branches(component, order)
        mains.append(main)
        hung.update(joined)
        for branch in branches:
            labels[branch] = len(orders) + len(all_branches)
            all_branches.append(branch)
    return Runs(labels, mains, all_branches, hung)


def _branches(component: Rooted, order: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], dict[int, int]]:
    """One chain's own run, the branches it also covers (each in training order) and ``Runs.hung``."""
    D, progress = component.D, component.progress
    if order.shape[0] < BRANCH_MIN_STEPS + 2:
        return order, [], {}
    steps = D[order[:-1], order[1:]]
    jump = BRANCH_JUMP * float(np.median(steps))
    back = progress[order[:-1]] - progress[order[1:]] > AHEAD_FRACTION * steps
    # stretches run back along a branch: steps [first, stop)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], back.astype(np.int8), [0]])))
    keep = np.ones(order.shape[0], dtype=bool)
    branches, cut = [], None
    for first, stop in zip(edges[::2], edges[1::2]):
        # the stretch's last checkpoint is back on the run when its nearest
        # checkpoint lower in progress is where the chain left the run, or when
        # the step to it is much longer than every other step of the stretch
        if (
            stop - first > 1
            and first > 0
            and (
                _nearest_lower(D, progress, int(order[stop])) == order[first - 1]
                or steps[stop - 1] >= STRETCH_END_RATIO * steps[first : stop - 1].max()
            )
        ):
            stop -= 1
        if stop - first < BRANCH_MIN_STEPS:
            continue
        entry = _entry(steps, first, stop - first, jump, cut)
        if entry is None:
            continue
        if cut is not None and entry == cut[0]:
            branches.pop()
        branches.append(order[entry + 1 : stop + 1][::-1])
        keep[entry + 1 : stop + 1] = False
        cut = (entry, stop)
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
            detour = _detour(D, piece, jump)
            if detour is not None:
                pieces += [piece[~detour], piece[detour]]
            elif main is None and piece[0] == order[0]:
                main = piece
            else:
                branches.append(piece)
            continue
        j = int(returns[0])
        pieces += list(_continuation(component, piece[: j + 1], piece[j + 1 :]))[::-1]
    branches, hung = _join_short(D, main, branches)
    main, branches = _turns_to_branches(D, component.neighbours[:, 0], main, branches, hung)
    main, branches = _slow_starts_to_branches(D, main, branches, hung)
    return main, branches, hung


def _entry(
    steps: np.ndarray, first: int, length: int, jump: float, cut: tuple[int, int] | None
) -> int | None:
    """The step that entered a stretch run back of ``length`` steps from ``first`` on, or None.

    A jump, or a walk with none in it and shorter than the stretch after a
    jump: the chain may land a little short of a fine-tune's tip and walk
    out to the tip before it turns back. The walk may also start where the
    last branch cut ended (``cut``: its entry and its last step): geodesic
    progress wavers where a branch passes near its parent, so one stretch
    along it may show as two; the entry is then that branch's own.
    """
    earliest = max(first - 1 - length, -1 if cut is None else cut[1] - 1)
    for entry in range(first - 1, earliest, -1):
        if steps[entry] >= jump:
            return entry
    if cut is not None and cut[1] - 1 == earliest:
        return cut[0]
    return None


def _turns_to_branches(
    D: np.ndarray, nearest: np.ndarray, main: np.ndarray, branches: list[np.ndarray], hung: dict[int, int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The run and its branches, with each checkpoint of the run that a branch holds more cheaply moved there.

    A chain that came back along a fine-tune may still pass through the
    fine-tune's first checkpoint between two of its parent's, off the run's
    path. By the chains' own measure, the sum of squared steps
    (:mod:`wtraj.analysis._cover`), a checkpoint of the run whose nearest
    checkpoint (``nearest``, over the whole component) lies on a branch
    belongs there when stepping over it on the run and joining it to that
    nearest costs less than the two steps through it: the run turns back
    there by well over a right angle. It goes to the branch before its
    nearest (and takes over its place in ``hung``, updated in place). No
    constant is involved.
    """
    branches = list(branches)
    while branches and main.shape[0] >= 3:
        # the branch each checkpoint lies on (-1: none)
        owner = np.full(D.shape[0], -1, dtype=np.int64)
        for j, branch in enumerate(branches):
            owner[branch] = j
        inner = main[1:-1]
        through = D[main[:-2], inner] ** 2 + D[inner, main[2:]] ** 2
        over = D[main[:-2], main[2:]] ** 2 + D[inner, nearest[inner]] ** 2
        cheaper = np.flatnonzero((owner[nearest[inner]] >= 0) & (over < through))
        if cheaper.shape[0] == 0:
            break
        node = inner[cheaper[0]]
        target = nearest[node]
        branch = branches[owner[target]]
        at = int(np.flatnonzero(branch == target)[0])
        branches[owner[target]] = np.concatenate([branch[:at], [node], branch[at:]])
        main = main[main != node]
        hung.pop(int(node), None)
        if int(target) in hung:
            hung[int(node)] = hung.pop(int(target))
    return main, branches


def _slow_starts_to_branches(
    D: np.ndarray, main: np.ndarray, branches: list[np.ndarray], hung: dict[int, int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The run and its branches, with a branch's first checkpoints that its host run took given back.

    A fine-tune's first steps are often much shorter than its parent's (a
    warm-up, a small learning rate), so its first checkpoints crowd its
    branch point and the parent's chain may pass through them: the squared
    steps barely differ. Their lengths do: the parent's steps jump down to
    them and back up. A stretch of the host run (the piece holding the
    checkpoint the branch hangs from) of fewer than ``BRANCH_MIN_STEPS``
    checkpoints around that checkpoint goes to the front of the branch,
    all of it or all but one checkpoint that stays on the host run, when
    that makes the step lengths of the host run and the branch change least
    (:func:`_step_changes`, over ``CONSISTENT_STEPS`` steps on each side).
    ``hung`` loses the moved checkpoints. No constant of its own.
    """
    pieces = [main, *branches]
    for b in range(1, len(pieces)):
        branch = pieces[b]
        others = np.concatenate([p for j, p in enumerate(pieces) if j != b])
        anchor = int(others[np.argmin(D[branch[0], others])])
        host = next(j for j, p in enumerate(pieces) if j != b and anchor in p)
        moved = _slow_start(D, pieces[host], branch, int(np.flatnonzero(pieces[host] == anchor)[0]))
        if moved is None:
            continue
        stretch, kept = moved
        pieces[b] = np.concatenate([stretch, branch])
        pieces[host] = kept
        for node in stretch:
            hung.pop(int(node), None)
    return pieces[0], pieces[1:]


def _slow_start(
    D: np.ndarray, host: np.ndarray, branch: np.ndarray, at: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(checkpoints for the front of ``branch``, the rest of ``host``) or None (see above)."""
    width = CONSISTENT_STEPS

    def cost(rest: np.ndarray, front: np.ndarray, lo: int, hi: int) -> float:
        # the host run around the stretch, and the branch from where it hangs on the
        # host (the front is no longer on it)
        path = np.concatenate([front, branch[: width + 1]])
        start = rest[np.argmin(D[path[0], rest])]
        return _step_changes(D, rest[max(lo - width, 0) : hi + width]) + _step_changes(
            D, np.concatenate([[start], path])
        )

    best, chosen = cost(host, np.empty(0, dtype=host.dtype), at, at + 1), None
    for lo in range(max(at - BRANCH_MIN_STEPS + 2, 1), at + 1):
        for hi in range(at + 1, min(lo + BRANCH_MIN_STEPS - 1, host.shape[0]) + 1):
            stretch = host[lo:hi]
            # the checkpoint that stays on the host run: none, or one of the stretch
            for stay in [None, *range(stretch.shape[0])]:
                staying = stretch[stay : stay + 1] if stay is not None else stretch[:0]
                front = np.delete(stretch, stay) if stay is not None else stretch
                if front.shape[0] == 0:
                    continue
                kept = np.concatenate([host[:lo], staying, host[hi:]])
                # the front ends where the branch begins
                if D[front[0], branch[0]] < D[front[-1], branch[0]]:
                    front = front[::-1]
                value = cost(kept, front, lo, lo + staying.shape[0])
                if value < best:
                    best, chosen = value, (front, kept)
    return chosen


def _step_changes(D: np.ndarray, path: np.ndarray) -> float:
    """How much the step lengths along ``path`` change: the sum of |log| of consecutive steps' ratios."""
    steps = D[path[:-1], path[1:]]
    return float(np.abs(np.diff(np.log(steps))).sum()) if steps.shape[0] > 1 else 0.0


def _join_short(
    D: np.ndarray, main: np.ndarray, branches: list[np.ndarray]
) -> tuple[list[np.ndarray], dict[int, int]]:
    """The branches, each shorter than ``BRANCH_MIN_STEPS`` joined to the piece of its nearest checkpoint.

    Every rule above finds branches of at least that many steps; a shorter
    piece is a detour the chain made on its way (a fine-tune's first
    checkpoint visited beside its branch point). A piece nearest a branch's
    first checkpoint comes before it (the branch's own first checkpoints,
    left behind by the chain); otherwise it is a detour, and ``Runs.hung``
    (returned too) hangs its first checkpoint from its nearest outside it.
    """
    pieces, hung = [main, *branches], {}
    while True:
        short = [i for i, p in enumerate(pieces) if i > 0 and p.shape[0] < BRANCH_MIN_STEPS]
        if not short:
            return pieces[1:], hung
        i = short[0]
        others = np.concatenate([p for j, p in enumerate(pieces) if j != i])
        owner = np.concatenate([np.full(p.shape[0], j) for j, p in enumerate(pieces) if j != i])
        closest = int(np.argmin(D[np.ix_(pieces[i], others)].min(axis=0)))
        nearest = int(owner[closest])
        if nearest > 0 and others[closest] == pieces[nearest][0]:
            pieces[nearest] = np.concatenate([pieces[i], pieces[nearest]])
        else:
            hung[int(pieces[i][0])] = int(others[np.argmin(D[pieces[i][0], others])])
            pieces[nearest] = np.concatenate([pieces[nearest], pieces[i]])
        del pieces[i]


def _detour(D: np.ndarray, piece: np.ndarray, jump: float) -> np.ndarray | None:
    """Where ``piece`` runs along a detour of much shorter steps that the run steps over (a mask), or None.

    A slow fine-tune (a small learning rate, a fine checkpoint cadence) that
    the chain runs along forwards between two checkpoints of its parent: its
    steps are at least ``DETOUR_RATIO`` times shorter than the run's before
    it, and from the checkpoint before it the run's next step (to the one
    after it) and the ``CONSISTENT_STEPS`` after that are each within
    ``DETOUR_RATIO`` of the run's median step before it. A learning rate
    dropped within one run also shortens the steps, but for good: none come
    back to the earlier length.

    The parent's own steps may change length where the fine-tune left (its
    learning rate dropped there): then the stretch ends at the first step
    ``DETOUR_RATIO`` times its longest step so far, and it is a detour when
    its steps are ``DETOUR_RATIO`` times shorter than the run's after it too
    and the run's next step, over the stretch, is within ``DETOUR_RATIO`` of
    the run's steps after it (:func:`_detour_to_slower_steps`).

    The chain may also weave between the two, where the fine-tune runs
    beside its parent a parent's step away: then the detour is every
    checkpoint reached from the detour's last in a step that short, while
    the run goes on in steps within ``DETOUR_RATIO`` of its median step
    (:func:`_woven_detour`).

    Where the test of the run's steps after the stretch fails, or the
    fine-tune steps as long as its parent, the stretch is still a detour
    when it led nowhere (:func:`_led_nowhere`, :func:`_jumped_back_detour`).
    """
    steps = D[piece[:-1], piece[1:]]
    n, width = piece.shape[0], CONSISTENT_STEPS
    for a in range(width + 1, n - BRANCH_MIN_STEPS - width):
        # steps[a - 1] enters piece[a]
        typical = float(np.median(steps[a - 1 - width : a - 1]))
        if steps[a - 1] * DETOUR_RATIO > typical:
            continue
        # the stretch of short steps: piece[a:b]
        longer = np.flatnonzero(steps[a:] * DETOUR_RATIO > typical)
        if longer.shape[0] > 0:
            b = a + 1 + int(longer[0])
            if b - a >= BRANCH_MIN_STEPS and b + width < n:
                after = piece[np.r_[a - 1, b : b + width + 1]]
                if np.all(_within_detour_ratio(D[after[:-1], after[1:]], typical)):
                    return _between(n, a, b)
            if b - a >= BRANCH_MIN_STEPS and _led_nowhere(D, piece, a, b, typical):
                return _between(n, a, b)
        b = _detour_to_slower_steps(D, piece, steps, a)
        if b is not None:
            return _between(n, a, b)
        woven = _woven_detour(D, piece, a, typical)
        if woven is not None:
            return woven
    return _jumped_back_detour(D, piece, steps, jump)


def _jumped_back_detour(
    D: np.ndarray, piece: np.ndarray, steps: np.ndarray, jump: float
) -> np.ndarray | None:
    """A detour the chain jumps back from, whatever its steps (a mask), or None.

    A fine-tune that steps about as long as its parent, run along forwards
    between two of the parent's checkpoints: the chain jumps from its tip
    back to the parent's next checkpoint. The detour holds at least
    ``BRANCH_MIN_STEPS`` checkpoints before the jump and led nowhere
    (:func:`_led_nowhere`); of the checkpoints it may follow, the one nearest
    the landing (the fine-tune's own first checkpoints may lie nearer, but
    not a run's step away).
    """
    n, width = piece.shape[0], CONSISTENT_STEPS
    for j in np.flatnonzero(steps >= jump):
        landing = piece[j + 1]
        nearest, chosen = np.inf, None
        for a in range(width + 1, j + 2 - BRANCH_MIN_STEPS):
            typical = float(np.median(steps[a - 1 - width : a - 1]))
            if D[piece[a - 1], landing] < nearest and _led_nowhere(D, piece, a, j + 1, typical):
                nearest, chosen = D[piece[a - 1], landing], a
        if chosen is not None:
            return _between(n, chosen, j + 1)
    return None


def _led_nowhere(D: np.ndarray, piece: np.ndarray, a: int, b: int, typical: float) -> bool:
    """Whether the run steps over ``piece[a:b]`` with its own step and the stretch brought it no nearer.

    The run's step from ``piece[a - 1]`` to ``piece[b]`` is within
    ``DETOUR_RATIO`` of ``typical``, and ``piece[b]`` lies no nearer the
    stretch's last checkpoint than that step: a fine-tune leaves its branch
    point at about a right angle to its parent's next step. A stretch of one
    run's own, however it steps, brings the run nearer its next checkpoint;
    this holds where the run's own steps change length after the stretch
    (a learning rate dropped where the fine-tune left), which the test of
    the steps after it cannot read.
    """
    bridge = float(D[piece[a - 1], piece[b]])
    return _within_detour_ratio(bridge, typical) and D[piece[b - 1], piece[b]] >= bridge


def _within_detour_ratio(length, typical: float):
    """Whether ``length`` (a step or an array) is within ``DETOUR_RATIO`` of ``typical`` either way."""
    return np.abs(np.log(length / typical)) <= np.log(DETOUR_RATIO)


def _between(n: int, a: int, b: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[a:b] = True
    return mask


def _woven_detour(D: np.ndarray, piece: np.ndarray, a: int, typical: float) -> np.ndarray | None:
    """The detour from ``piece[a]`` on where the chain weaves between it and the run (a mask), or None.

    From ``piece[a]`` on, a checkpoint within a ``DETOUR_RATIO`` times
    shorter step than ``typical`` of the detour's last is the detour's; else
    one within ``DETOUR_RATIO`` of ``typical`` from the run's last is the
    run's; the first that is neither ends the weave (the rest is the run's).
    A detour of at least ``BRANCH_MIN_STEPS`` steps beside at least
    ``CONSISTENT_STEPS + 1`` of the run's checkpoints counts: a run whose
    learning rate dropped has no steps of the old length after the drop.
    """
    n = piece.shape[0]
    detour, run = [a], [a - 1]
    for i in range(a + 1, n):
        if D[piece[detour[-1]], piece[i]] * DETOUR_RATIO <= typical:
            detour.append(i)
        elif _within_detour_ratio(D[piece[run[-1]], piece[i]], typical):
            run.append(i)
        else:
            break
    if len(detour) <= BRANCH_MIN_STEPS or len(run) <= CONSISTENT_STEPS + 1:
        return None
    mask = np.zeros(n, dtype=bool)
    mask[detour] = True
    return mask


def _detour_to_slower_steps(D: np.ndarray, piece: np.ndarray, steps: np.ndarray, a: int) -> int | None:
    """The end ``b`` of a detour ``piece[a:b]`` measured against the run's steps after it, or None."""
    n, width = piece.shape[0], CONSISTENT_STEPS
    # the first step DETOUR_RATIO times the longest of the stretch's steps before it
    # (a fine-tune's warm-up lengthens its steps, but gradually)
    longest = np.maximum.accumulate(steps[a - 1 : n - 2])
    ends = np.flatnonzero(steps[a : n - 1] >= DETOUR_RATIO * longest)
    b = a + 1 + int(ends[0]) if ends.shape[0] else None
    if b is None or b - a < BRANCH_MIN_STEPS or b + width >= n:
        return None
    scale = float(np.median(steps[b : b + width]))
    stretch = float(np.median(steps[a - 1 : b - 1]))
    bridge = float(D[piece[a - 1], piece[b]])
    if stretch * DETOUR_RATIO <= scale and _within_detour_ratio(bridge, scale):
        return b
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


def _nearest_lower(D: np.ndarray, progress: np.ndarray, node: int) -> int:
    """The nearest checkpoint of lower progress than ``node`` (``node`` is not the root)."""
    lower = np.flatnonzero(progress < progress[node])
    return int(lower[np.argmin(D[node, lower])])
