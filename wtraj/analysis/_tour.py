"""Shortest open path through the checkpoints: the seriation behind ``order_checkpoints``.

Consecutive checkpoints of one training run are each other's nearest points
in weight space, so the run's order is (up to reversal) the shortest
Hamiltonian path through its distance matrix. The path is found with local
search: a start from a one-dimensional projection, then 2-opt and or-opt moves
restricted to each checkpoint's ``k`` nearest neighbours until no move
shortens the path. An extra "dummy" node at distance 0 from every checkpoint
closes the path into a tour, so the endpoints may move as well.

Each improving move is applied at once (first improvement) and the scan order
is fixed, so the result is deterministic. A 2-opt move costs O(N) (a segment
reversal); starting from the projection, few moves are needed, and the total
stays well within O(N^2) on trajectories.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# candidate moves per checkpoint: its nearest neighbours
N_NEIGHBOURS = 10
# rows of D handled per chunk when finding neighbours (bounds temporary memory)
ROW_CHUNK = 1024


def nearest_neighbours(D: np.ndarray, k: int) -> np.ndarray:
    """``(N, min(k, N-1))`` int64: each row's nearest other rows, closest first, ties by index."""
    n = D.shape[0]
    k = min(k, n - 1)
    result = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, ROW_CHUNK):
        rows = D[start : start + ROW_CHUNK].copy()
        rows[np.arange(rows.shape[0]), np.arange(start, start + rows.shape[0])] = np.inf
        if k < n - 1:
            part = np.argpartition(rows, k - 1, axis=1)[:, :k]
        else:
            part = np.tile(np.arange(n), (rows.shape[0], 1))
        values = np.take_along_axis(rows, part, axis=1)
        # sort by distance, then index, so that ties are broken the same way every time
        keys = np.lexsort((part, values), axis=1)
        result[start : start + rows.shape[0]] = np.take_along_axis(part, keys, axis=1)[:, :k]
    return result


def projection_order(D: np.ndarray) -> np.ndarray:
    """A first order: sort by the FastMap coordinate along the two farthest-apart checkpoints."""
    a = int(np.argmax(D[0]))
    b = int(np.argmax(D[a]))
    a = int(np.argmax(D[b]))
    coordinate = D[a] ** 2 - D[b] ** 2
    return np.argsort(coordinate, kind="stable").astype(np.int64)


@njit(cache=True)
def _dist(D, n, u, v):
    if u == n or v == n:
        return 0.0
    return D[u, v]


@njit(cache=True)
def _reverse(tour, pos, first, last):
    # reverse tour positions first..last (cyclic); the shorter side is reversed,
    # which gives the same cycle
    m = tour.shape[0]
    length = (last - first) % m + 1
    if 2 * length > m:
        first, last = (last + 1) % m, (first - 1) % m
        length = m - length
    for _ in range(length // 2):
        u = tour[first]
        v = tour[last]
        tour[first] = v
        pos[v] = first
        tour[last] = u
        pos[u] = last
        first = (first + 1) % m
        last = (last - 1) % m


@njit(cache=True)
def _two_opt_pass(D, tour, pos, neighbours, tolerance):
    n = D.shape[0]
    m = n + 1
    improved = False
    for a in range(n):
        for forward in (True, False):
            i = pos[a]
            b = tour[(i + 1) % m] if forward else tour[(i - 1) % m]
            dab = _dist(D, n, a, b)
            for c in neighbours[a]:
                dac = D[a, c]
                if dac >= dab:
                    break
                j = pos[c]
                d = tour[(j + 1) % m] if forward else tour[(j - 1) % m]
                if c == b or d == a:
                    continue
                delta = dac + _dist(D, n, b, d) - dab - _dist(D, n, c, d)
                if delta < -tolerance:
                    if forward:
                        _reverse(tour, pos, (i + 1) % m, j)
                    else:
                        _reverse(tour, pos, j, (i - 1) % m)
                    improved = True
                    break
    return improved


@njit(cache=True)
def _or_opt_pass(D, tour, pos, neighbours, tolerance, max_segment):
    # move a segment of 1..max_segment checkpoints, maybe reversed, next to a
    # neighbour of one of its ends
    n = D.shape[0]
    m = n + 1
    improved = False
    for length in range(1, max_segment + 1):
        for first_node in range(n):
            i = pos[first_node]
            last = (i + length - 1) % m
            # the segment must not contain the dummy
            has_dummy = False
            for t in range(length):
                if tour[(i + t) % m] == n:
                    has_dummy = True
            if has_dummy or length >= m - 2:
                continue
            s1 = tour[i]
            s2 = tour[last]
            p = tour[(i - 1) % m]
            q = tour[(last + 1) % m]
            removal_gain = _dist(D, n, p, s1) + _dist(D, n, s2, q) - _dist(D, n, p, q)
            if removal_gain <= tolerance:
                continue
            best = -tolerance
            best_c = -1
            best_reversed = False
            best_after = True
            for end in (s1, s2):
                for c in neighbours[end]:
                    # c must lie outside the segment
                    offset = (pos[c] - i) % m
                    if offset < length:
                        continue
                    for after in (True, False):
                        e = tour[(pos[c] + 1) % m] if after else tour[(pos[c] - 1) % m]
                        offset_e = (pos[e] - i) % m
                        if offset_e < length:
                            continue
                        # insert between c and e; the segment end touching c is `end`
                        other = s2 if end == s1 else s1
                        cost = D[c, end] + _dist(D, n, other, e) - _dist(D, n, c, e)
                        gain = removal_gain - cost
                        if gain > best + tolerance:
                            best = gain
                            best_c = c
                            # orientation: segment read forward is s1..s2
                            best_reversed = (end == s1) != after
                            best_after = after
            if best_c >= 0:
                _move_segment(tour, pos, i, length, best_c, best_after, best_reversed)
                improved = True
    return improved


@njit(cache=True)
def _move_segment(tour, pos, i, length, c, after, reverse_segment):
    m = tour.shape[0]
    segment = np.empty(length, dtype=tour.dtype)
    for t in range(length):
        segment[t] = tour[(i + t) % m]
    if reverse_segment:
        segment = segment[::-1].copy()
    rest = np.empty(m - length, dtype=tour.dtype)
    for t in range(m - length):
        rest[t] = tour[(i + length + t) % m]
    out = np.empty(m, dtype=tour.dtype)
    k = 0
    for t in range(m - length):
        node = rest[t]
        if node == c and not after:
            for s in range(length):
                out[k] = segment[s]
                k += 1
        out[k] = node
        k += 1
        if node == c and after:
            for s in range(length):
                out[k] = segment[s]
                k += 1
    for t in range(m):
        tour[t] = out[t]
        pos[out[t]] = t


@njit(cache=True)
def _local_search(D, tour, pos, neighbours, tolerance, max_rounds):
    for _ in range(max_rounds):
        improved = _two_opt_pass(D, tour, pos, neighbours, tolerance)
        improved = _or_opt_pass(D, tour, pos, neighbours, tolerance, 3) or improved
        if not improved:
            break


@njit(cache=True)
def _swap_delta(D, order, p, window):
    # change of the windowed cost when order[p] and order[p + 1] trade places
    n = order.shape[0]
    u = order[p]
    v = order[p + 1]
    delta = 0.0
    for a in range(1, window + 1):
        if p - a < 0:
            break
        x = order[p - a]
        delta += a * (D[x, v] - D[x, u])
    for b in range(1, window + 1):
        if p + 1 + b >= n:
            break
        y = order[p + 1 + b]
        delta += b * (D[u, y] - D[v, y])
    return delta


@njit(cache=True)
def _swap(order, p):
    u = order[p]
    order[p] = order[p + 1]
    order[p + 1] = u


@njit(cache=True)
def _window_sweeps(D, order, window, tolerance, max_sweeps):
    # each move carries one checkpoint up to `window` places forward or back
    # (a run of adjacent swaps); the best move is kept if it lowers the cost
    n = order.shape[0]
    for _ in range(max_sweeps):
        moved = False
        for p in range(n):
            for step in (1, -1):
                total = 0.0
                best = -tolerance
                best_shift = 0
                q = p
                for shift in range(1, window + 1):
                    swap_at = q if step == 1 else q - 1
                    if swap_at < 0 or swap_at + 1 >= n:
                        break
                    total += _swap_delta(D, order, swap_at, window)
                    _swap(order, swap_at)
                    q += step
                    if total < best:
                        best = total
                        best_shift = shift
                # undo the swaps beyond the best shift
                for _ in range(q - p if step == 1 else p - q, best_shift, -1):
                    q -= step
                    _swap(order, q if step == 1 else q - 1)
                if best_shift > 0:
                    moved = True
                    break
        if not moved:
            break


def window_refine(D: np.ndarray, order: np.ndarray, window: int, max_sweeps: int = 1000):
    """Improve ``order`` by short moves that lower the windowed path cost.

    The cost is ``sum_k c_k * sum_i D[order[i], order[i + k]]`` for lags
    ``k = 1 .. window`` with ``c_k = k + (k + 1) + ... + window``: a path
    length that also weighs the distances to the next few checkpoints.
    Swapping neighbours ``u, v`` changes it by
    ``sum_a a * (D[x_a, v] - D[x_a, u]) + sum_b b * (D[u, y_b] - D[v, y_b])``
    over the checkpoints ``x_a`` at lag ``a`` before them and ``y_b`` at lag
    ``b`` after them: ``v`` moves first when it is closer to the checkpoints
    before, farther from those after, and far lags weigh most; a move
    carries one checkpoint up to ``window`` places by such swaps. Where
    late-training steps are as short as the noise between checkpoints, the
    shortest path alone may swap neighbours; these longer lags decide.

    Returns
    -------
    ndarray, shape (N,), int64
        The refined order (a new array).
    """
    refined = np.array(order, dtype=np.int64)
    tolerance = 1e-12 * float(D.max())
    _window_sweeps(np.ascontiguousarray(D), refined, int(window), tolerance, max_sweeps)
    return refined


def shortest_path_order(D: np.ndarray, max_rounds: int = 1000) -> np.ndarray:
    """Checkpoint indices along a short open path through all of ``D`` (either direction).

    Parameters
    ----------
    D : ndarray, shape (N, N), float64
        Distances between distinct checkpoints, N >= 2.
    max_rounds : int
        Upper bound on the rounds of 2-opt and or-opt passes (each round scans
        every checkpoint); the search stops earlier when a round improves nothing.

    Returns
    -------
    ndarray, shape (N,), int64
    """
    n = D.shape[0]
    if n <= 3:
        return projection_order(D)
    neighbours = nearest_neighbours(D, N_NEIGHBOURS)
    tour = np.append(projection_order(D), n).astype(np.int64)
    pos = np.empty(n + 1, dtype=np.int64)
    pos[tour] = np.arange(n + 1)
    # moves smaller than this are rounding noise, not improvements
    tolerance = 1e-12 * float(D.max())
    _local_search(np.ascontiguousarray(D), tour, pos, neighbours, tolerance, max_rounds)
    cut = int(pos[n])
    return np.concatenate([tour[cut + 1 :], tour[:cut]])
