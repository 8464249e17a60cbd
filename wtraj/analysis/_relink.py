"""Relink the chains of runs that share a start where they swap: windowed squared distances.

The chains of :mod:`wtraj.analysis._cover` have the right shape (one
checkpoint per chain per stage of training) but may swap runs where the runs
run side by side: the cover weighs only consecutive checkpoints. In the first
epochs runs from one start stay closer to each other than to their own next
checkpoint, and one step says little about which continuation is whose; what
tells them apart is that each run keeps the offset it took early on.

With ``A_t``, ``B_t`` two runs and ``delta_t = A_t - B_t``, the identity
``d(A_s, B_t)^2 + d(B_s, A_t)^2 - d(A_s, A_t)^2 - d(B_s, B_t)^2 = 2 <delta_s, delta_t>``
makes exchanging the two runs' continuations after a checkpoint cost
``2 sum <delta_s, delta_t>`` over the pairs ``s`` before and ``t`` after it:
positive while the offsets persist, whatever the common path of the runs
(it cancels). Here every pair of checkpoints at most ``window`` positions
apart on a chain costs its squared distance, and two moves lower the total,
position after position, until a sweep changes nothing:

- the checkpoints at a position are reassigned to the chains (each chain's
  checkpoints before and after the position stay);
- the continuations after a position are reassigned to the chains.

Each is a sparse matching (a chain may take the checkpoint or continuation of
the chains of its checkpoint's nearest neighbours) and is kept only when it
lowers the total, so the sweeps end. The shape of the chains (how many
checkpoints each has up to each position) never changes.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

# sweeps over all positions at most; on the toy runs the chains settle within 2
MAX_SWEEPS = 20


def relink_chains(
    D: np.ndarray,
    chain: np.ndarray,
    progress: np.ndarray,
    root: int,
    neighbours: np.ndarray,
    window: int,
) -> np.ndarray:
    """Chains of the same shape in which each run keeps to one chain.

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
        Distances between distinct checkpoints.
    chain : ndarray, shape (N,), int64
        Chain of each checkpoint (0 .. k-1), as from
        :func:`wtraj.analysis._cover.chain_cover`; the root's label is kept.
    progress : ndarray, shape (N,), float64
        The progress the chains rise in (ties broken by index).
    root : int
        The common start; position 0 of every chain.
    neighbours : ndarray, shape (N, K), int64
        Nearest neighbours of each checkpoint: the chains a checkpoint's chain
        may exchange with are those of its neighbours.
    window : int
        Pairs of checkpoints at most ``window`` positions apart are weighed.

    Returns
    -------
    ndarray, shape (N,), int64
        New chain of each checkpoint. Each chain keeps its first checkpoint,
        so the numbering of :func:`~wtraj.analysis._cover.chain_cover` holds.
    """
    n = D.shape[0]
    k = int(chain.max()) + 1
    if k < 2:
        return chain
    by_progress = np.lexsort((np.arange(n), progress))
    by_progress = by_progress[by_progress != root]
    sequences = [np.concatenate([[root], by_progress[chain[by_progress] == c]]) for c in range(k)]
    chain_of = chain.copy()
    tolerance = 1e-12 * float(D.max()) ** 2
    for _ in range(MAX_SWEEPS):
        changed = False
        longest = max(s.shape[0] for s in sequences)
        for position in range(1, longest):
            # at the first position an exchange is a relink after it, but for the chains' numbers
            if position > 1:
                changed |= _exchange_at(D, sequences, chain_of, position, neighbours, window, tolerance)
            changed |= _relink_after(D, sequences, chain_of, position, neighbours, window, tolerance)
        if not changed:
            break
    relinked = np.empty(n, dtype=np.int64)
    for c, sequence in enumerate(sequences):
        relinked[sequence[1:]] = c
    relinked[root] = chain[root]
    return relinked


def _windows(sequences, live, position, window):
    """Per live chain: up to ``window`` checkpoints before ``position`` (latest first), the
    checkpoint at it, and up to ``window`` after it; -1 pads."""
    before = np.full((live.shape[0], window), -1, dtype=np.int64)
    after = np.full((live.shape[0], window), -1, dtype=np.int64)
    for i, c in enumerate(live):
        s = sequences[c]
        head = s[max(0, position - window) : position][::-1]
        tail = s[position + 1 : position + 1 + window]
        before[i, : head.shape[0]] = head
        after[i, : tail.shape[0]] = tail
    at = np.array([sequences[c][position] for c in live], dtype=np.int64)
    return before, at, after


def _candidates(at, chain_of, slot, neighbours):
    """Pairs (row, column) of live chains: each chain with itself and its checkpoint's neighbours' chains."""
    m = at.shape[0]
    rows = np.repeat(np.arange(m), neighbours.shape[1] + 1)
    cols = slot[chain_of[np.column_stack([at, neighbours[at]])]].ravel()
    keep = cols >= 0
    pair = np.unique(rows[keep] * m + cols[keep])
    return pair, pair // m, pair % m


def _squared_sum(D, a, b, weighed):
    """``sum D[a, b]^2`` over the entries where ``weighed``; a (P, I, 1), b (P, 1, J)."""
    weighed = weighed & (a >= 0) & (b >= 0)
    return np.where(weighed, D[np.maximum(a, 0), np.maximum(b, 0)] ** 2, 0.0).sum(axis=(1, 2))


def _best_matching(pair, rows, cols, cost, m, tolerance):
    """The matching of least cost over the candidate pairs, or None if it saves nothing."""
    # the sparse solver reads stored zeros as missing edges: shift every weight (one per row is used)
    graph = coo_matrix((cost + 1.0 + float(cost.max()), (rows, cols)), shape=(m, m)).tocsr()
    _, matched = min_weight_full_bipartite_matching(graph)
    best = cost[np.searchsorted(pair, np.arange(m) * m + matched)].sum()
    if best >= cost[rows == cols].sum() - tolerance:
        return None
    return matched


def _live(sequences, position):
    """Chains that have a checkpoint at ``position`` (0 is the root), and their slot per chain."""
    live = np.array([c for c, s in enumerate(sequences) if s.shape[0] > position], dtype=np.int64)
    slot = np.full(len(sequences), -1, dtype=np.int64)
    slot[live] = np.arange(live.shape[0])
    return live, slot


def _exchange_at(D, sequences, chain_of, position, neighbours, window, tolerance) -> bool:
    """Reassign the checkpoints at ``position`` to the chains (in place); True when any moved."""
    live, slot = _live(sequences, position)
    if live.shape[0] < 2:
        return False
    before, at, after = _windows(sequences, live, position, window)
    pair, rows, cols = _candidates(at, chain_of, slot, neighbours)
    # checkpoint of chain `row` among the checkpoints around the position on chain `col`
    node = at[rows][:, None, None]
    everything = np.ones((1, 1, window), dtype=bool)
    cost = _squared_sum(D, node, before[cols][:, None, :], everything) + _squared_sum(
        D, node, after[cols][:, None, :], everything
    )
    matched = _best_matching(pair, rows, cols, cost, live.shape[0], tolerance)
    if matched is None:
        return False
    for i in range(live.shape[0]):
        c = live[matched[i]]
        sequences[c][position] = at[i]
        chain_of[at[i]] = c
    return True


def _relink_after(D, sequences, chain_of, position, neighbours, window, tolerance) -> bool:
    """Reassign the continuations after ``position`` to the chains (in place); True when any moved."""
    live, slot = _live(sequences, position)
    if live.shape[0] < 2:
        return False
    before, at, after = _windows(sequences, live, position, window)
    # up to the cut: the checkpoint at the position, then the earlier ones
    up_to = np.column_stack([at, before[:, :-1]])
    pair, rows, cols = _candidates(at, chain_of, slot, neighbours)
    # pair (a, b): a positions before the cut's checkpoint and b after its next: a + b + 1 apart
    lag = np.arange(window)
    across = (lag[:, None] + lag[None, :] < window)[None]
    cost = _squared_sum(D, up_to[rows][:, :, None], after[cols][:, None, :], across)
    matched = _best_matching(pair, rows, cols, cost, live.shape[0], tolerance)
    if matched is None:
        return False
    tails = [sequences[c][position + 1 :] for c in live]
    for i, c in enumerate(live):
        tail = tails[matched[i]]
        sequences[c] = np.concatenate([sequences[c][: position + 1], tail])
        chain_of[tail] = c
    return True
