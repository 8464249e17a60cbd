"""Minimum spanning tree and its long-path decomposition, on a dense distance matrix."""

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


def root_tree(adjacency: list[list[int]], root: int) -> tuple[np.ndarray, np.ndarray]:
    """Parents (root: -1) and a breadth-first visiting order of the tree rooted at ``root``."""
    n = len(adjacency)
    parent = np.full(n, -1, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    seen[root] = True
    visit = [root]
    for u in visit:
        for v in adjacency[u]:
            if not seen[v]:
                seen[v] = True
                parent[v] = u
                visit.append(v)
    return parent, np.asarray(visit, dtype=np.int64)


def long_paths(parent: np.ndarray, visit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Long-path decomposition of a rooted tree.

    Every node continues the path of the child with the longest way down to
    a leaf (in nodes; ties go to the lower index), so the tree splits into
    disjoint root-to-leaf-ward paths, the longest first.

    Returns
    -------
    path_of : ndarray, shape (N,), int64
        Path id of each node; path ids are in decreasing order of length.
    path_length : ndarray, shape (n_paths,), int64
        Nodes on each path.
    """
    n = parent.shape[0]
    height = np.ones(n, dtype=np.int64)
    heavy = np.full(n, -1, dtype=np.int64)
    for u in visit[::-1]:
        p = parent[u]
        if p >= 0 and (
            height[u] + 1 > height[p] or (height[u] + 1 == height[p] and u < heavy[p])
        ):
            height[p] = height[u] + 1
            heavy[p] = u
    tops = [int(u) for u in visit if parent[u] < 0 or heavy[parent[u]] != u]
    # longest paths first; ties by the top node's index, for determinism
    tops.sort(key=lambda u: (-height[u], u))
    path_of = np.full(n, -1, dtype=np.int64)
    for k, top in enumerate(tops):
        u = top
        while u >= 0:
            path_of[u] = k
            u = heavy[u]
    return path_of, height[np.asarray(tops, dtype=np.int64)]
