"""Chains of runs that share a start which end on one run: the chain that crossed over ends there.

The chain covers of :mod:`wtraj.analysis._cover` credit each chain for the
distance from the start at which it ends (``REACH``), so that a run's chain
does not end early and leave its later checkpoints to a sibling's chain. The
credit has a price: the chain of a run that stopped early (or whose own
checkpoints end at a data shift's jump) goes on after its run's end through
every other checkpoint of a sibling. Late in training a run's steps are
nearly orthogonal, so a chain through every second checkpoint costs no more
squared step than one through all, and both chains gain the credit of the
sibling's end.

Such a chain ends on another chain's run: its last checkpoint lies closer
to a checkpoint of that chain than to its own previous one (the chain's
steps skip every other checkpoint of the run), while the last checkpoint of
a run's own chain lies a step of its own from its previous one and, late in
training, farther from its siblings (development part of the zoo: the last
checkpoints of runs 10.6 and more times their last step from each other).
From such a pair's last checkpoints, their checkpoints merged in progress
order are walked back for as long as the steps of the merged path are no
longer than the step into the same checkpoint on its own chain (the path of
one run, taken by two chains in turns; the walk stops at two longer steps
in a row, one is noise); before that the chains are on their own runs. A
stretch with fewer than ``MIN_TURNS`` checkpoints of either chain is left
alone. The
merged stretch goes on the chain whose own part it continues at the least
squared distance summed over pairs up to the relinking window apart, from
a stage of training both own parts reach (a run's offset from its sibling
persists); the other chain ends where its own part ends. The cut is kept
only when it lowers the squared steps of the two chains: one run taken in
turns costs less as one chain, two runs side by side (early in training,
where siblings are closer than a step) do not.
"""

from __future__ import annotations

import numpy as np

# checkpoints of each chain in a stretch taken in turns, as many as a branch
# needs (toy siblings that converge after a learning-rate cut take 4 in turns)
MIN_TURNS = 8

def separate_shared_ends(
    D: np.ndarray, chain: np.ndarray, progress: np.ndarray, root: int, window: int
) -> np.ndarray:
    """The chains, each pair that takes one run in turns cut where the turns began (module docstring).

    Parameters
    ----------
    D : ndarray, shape (N, N)
        Distances between distinct checkpoints.
    chain : ndarray, shape (N,), int64
        Chain of each checkpoint, ``0 .. k-1``; the root's label is kept.
    progress : ndarray, shape (N,)
        The progress the chains rise in.
    root : int
        The common start.
    window : int
        Checkpoints on each side of the cut that decide which chain goes on
        (pairs at most this many positions apart, as in relinking).

    Returns
    -------
    ndarray, shape (N,), int64
        New chain of each checkpoint; every chain keeps its first checkpoint.
    """
    chain = chain.copy()
    k = int(chain.max()) + 1
    for _ in range(k):
        sequences = _sequences(chain, progress, root, k)
        pairs = _pairs(D, sequences)
        if not any(_cut_crossing(D, progress, chain, sequences, x, y, window) for x, y in pairs):
            break
    return chain


def _sequences(chain, progress, root, k):
    """Each chain's checkpoints after the root, in progress order."""
    order = np.lexsort((np.arange(chain.shape[0]), progress))
    order = order[order != root]
    return [order[chain[order] == c] for c in range(k)]


def _pairs(D, sequences):
    """Chains ``(x, y)``: the last checkpoint of ``x`` is closer to one of ``y`` than to its own previous one.

    Closest first (the distance over the last step of ``x``); chains of one
    checkpoint have no last step and are left out as ``x``.
    """
    k = len(sequences)
    nodes = np.concatenate(sequences)
    owner = np.repeat(np.arange(k), [s.shape[0] for s in sequences])
    pairs = []
    for x, s in enumerate(sequences):
        if s.shape[0] < 2:
            continue
        nearest = np.full(k, np.inf)
        np.minimum.at(nearest, owner, D[s[-1], nodes])
        apart = nearest / D[s[-2], s[-1]]
        apart[x] = np.inf
        pairs += [(float(apart[y]), x, int(y)) for y in np.flatnonzero(apart < 1.0)]
    return [(x, y) for _, x, y in sorted(pairs)]


def _cut_crossing(D, progress, chain, sequences, x, y, window) -> bool:
    """Give the stretch chains ``x`` and ``y`` take in turns to one of them (in place); False if none."""
    merged = np.concatenate([sequences[x], sequences[y]])
    merged = merged[np.lexsort((merged, progress[merged]))]
    own_before = np.full(D.shape[0], -1, dtype=np.int64)
    for s in (sequences[x], sequences[y]):
        own_before[s[1:]] = s[:-1]
    before, node = merged[:-1], merged[1:]
    own_step = np.where(own_before[node] >= 0, D[np.maximum(own_before[node], 0), node], np.inf)
    # a step of the merged path that neither follows a chain nor takes a turn within one run
    breaks = (before != own_before[node]) & (D[before, node] > own_step)
    # the stretch ends (going back) at two breaks in a row: one alone is noise
    twice = np.flatnonzero(breaks[1:] & breaks[:-1])
    start = int(twice[-1]) + 2 if twice.shape[0] else 0
    stretch = merged[start:]
    own = {c: sequences[c][~np.isin(sequences[c], stretch)] for c in (x, y)}
    # chains that take turns: the stretch holds ``MIN_TURNS`` checkpoints of each, and each keeps some
    taken = {c: np.count_nonzero(np.isin(stretch, sequences[c])) for c in (x, y)}
    if any(own[c].shape[0] == 0 or taken[c] < MIN_TURNS for c in (x, y)):
        return False
    # heads that end at one stage of training, so that only the runs' offsets differ
    level = min(progress[own[c][-1]] for c in (x, y))
    heads = {c: own[c][progress[own[c]] <= level] for c in (x, y)}
    if any(heads[c].shape[0] == 0 for c in (x, y)):
        return False
    keep = min((x, y), key=lambda c: _across(D, heads[c], stretch, window))
    # one run taken in turns costs less squared step as one chain; two runs side by side do not
    ended = x if keep == y else y
    now = _squared_steps(D, sequences[x]) + _squared_steps(D, sequences[y])
    cut = _squared_steps(D, np.concatenate([own[keep], stretch])) + _squared_steps(D, own[ended])
    if cut >= now:
        return False
    chain[stretch] = keep
    return True


def _squared_steps(D, sequence):
    """Sum of squared steps along ``sequence`` (the root left out: every chain has that step)."""
    return float(np.sum(D[sequence[:-1], sequence[1:]] ** 2))


def _across(D, head, tail, window):
    """Squared distances between the end of ``head`` and the start of ``tail``, pairs under ``window`` apart.

    What a chain that goes on from ``head`` into ``tail`` costs in the
    relinking of :mod:`wtraj.analysis._relink`: a run's offset from a
    sibling persists, so it shows summed over many pairs where one step
    may not show it.
    """
    before = head[::-1][:window]
    after = tail[:window]
    lag = np.arange(window)
    near = (lag[: before.shape[0], None] + lag[None, : after.shape[0]]) < window
    return float(np.sum(np.where(near, D[np.ix_(before, after)] ** 2, 0.0)))
