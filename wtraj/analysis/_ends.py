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

Two such chains end on one run: their last checkpoints lie a step or two of
that run apart, while runs that share a start end at least as far apart as
their offset from each other (development part of the zoo: 10.6 and more
times their last step, against 1.3-2.5 for two chains ending on one run).
Where two chains end closer than ``SAME_END_STEPS`` times the longer of
their last steps, their checkpoints are merged in progress order and walked
back from the end for as long as each step of the merged path is no longer
than the step into the same checkpoint on its own chain (the path of one
run, taken by two chains in turns); before that the chains are on their own
runs. The merged stretch goes on the chain whose own part it continues at
the least squared distance summed over pairs up to the relinking window
apart (a run's offset from its sibling persists); the other chain ends
where its own part ends.
"""

from __future__ import annotations

import numpy as np

# chain ends closer than this many of their last steps lie on one run
SAME_END_STEPS = 5.0


def separate_shared_ends(
    D: np.ndarray, chain: np.ndarray, progress: np.ndarray, root: int, window: int
) -> np.ndarray:
    """The chains, with each pair that ends on one run cut where they started taking turns.

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
        pair = _pair_ending_on_one_run(D, sequences)
        if pair is None:
            break
        if not _cut_crossing(D, progress, chain, sequences, *pair, window):
            break
    return chain


def _sequences(chain, progress, root, k):
    """Each chain's checkpoints after the root, in progress order."""
    order = np.lexsort((np.arange(chain.shape[0]), progress))
    order = order[order != root]
    return [order[chain[order] == c] for c in range(k)]


def _pair_ending_on_one_run(D, sequences):
    """Two chains (longer first) whose ends are closer than ``SAME_END_STEPS`` last steps, or None."""
    ends, last = [], []
    for s in sequences:
        ends.append(s[-1])
        last.append(D[s[-2], s[-1]] if s.shape[0] > 1 else np.inf)
    ends, last = np.array(ends), np.array(last)
    apart = D[np.ix_(ends, ends)] / np.maximum(last[:, None], last[None, :])
    np.fill_diagonal(apart, np.inf)
    a, b = np.unravel_index(np.argmin(apart), apart.shape)
    if not apart[a, b] < SAME_END_STEPS:
        return None
    return (a, b) if sequences[a].shape[0] >= sequences[b].shape[0] else (b, a)


def _cut_crossing(D, progress, chain, sequences, x, y, window) -> bool:
    """Give the stretch chains ``x`` and ``y`` take in turns to one of them (in place); False if none."""
    merged = np.concatenate([sequences[x], sequences[y]])
    merged = merged[np.lexsort((merged, progress[merged]))]
    own_step = {}
    for s in (sequences[x], sequences[y]):
        own_step.update(zip(s[1:].tolist(), D[s[:-1], s[1:]].tolist()))
    # merged steps longer than the same checkpoint's own step, from the end back
    longer = np.array(
        [node not in own_step or D[before, node] > own_step[node] for before, node in zip(merged[:-1].tolist(), merged[1:].tolist())]
    )
    # the stretch ends (going back) at two such steps in a row: one alone is noise
    twice = np.flatnonzero(longer[1:] & longer[:-1])
    start = int(twice[-1]) + 2 if twice.shape[0] else 0
    stretch = merged[start:]
    own = {c: sequences[c][~np.isin(sequences[c], stretch)] for c in (x, y)}
    if any(own[c].shape[0] == 0 for c in (x, y)) or np.all(np.isin(stretch, sequences[x])):
        return False
    # heads that end at one stage of training, so that only the runs' offsets differ
    level = min(progress[own[c][-1]] for c in (x, y))
    heads = {c: own[c][progress[own[c]] <= level] for c in (x, y)}
    if any(heads[c].shape[0] == 0 for c in (x, y)):
        return False
    keep = min((x, y), key=lambda c: _across(D, heads[c], stretch, window))
    chain[stretch] = keep
    return True


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
