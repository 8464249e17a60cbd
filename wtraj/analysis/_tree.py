"""Minimum spanning tree of a dense distance matrix (Prim, O(N^2))."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def minimum_spanning_tree(D):
    """Prim's algorithm on a dense ``(N, N)`` matrix: ``neighbour`` (N,) int64, ``length`` (N,).

    Node 0 is the seed; for every other node ``i``, ``(i, neighbour[i])`` is a
    tree edge of length ``length[i]``; ``neighbour[0] = -1``. O(N^2) time,
    O(N) extra memory; ties go to the lower index.
    """
    n = D.shape[0]
    in_tree = np.zeros(n, dtype=np.bool_)
    best = np.full(n, np.inf)
    neighbour = np.full(n, -1, dtype=np.int64)
    best[0] = 0.0
    for _ in range(n):
        u = -1
        smallest = np.inf
        for v in range(n):
            if not in_tree[v] and best[v] < smallest:
                smallest = best[v]
                u = v
        in_tree[u] = True
        for v in range(n):
            if not in_tree[v] and D[u, v] < best[v]:
                best[v] = D[u, v]
                neighbour[v] = u
    return neighbour, best


def tree_adjacency(neighbour: np.ndarray) -> list[list[int]]:
    """Adjacency lists (sorted) of the tree given by :func:`minimum_spanning_tree`."""
    adjacency: list[list[int]] = [[] for _ in range(neighbour.shape[0])]
    for i, j in enumerate(neighbour):
        if j >= 0:
            adjacency[i].append(int(j))
            adjacency[int(j)].append(i)
    for row in adjacency:
        row.sort()
    return adjacency
