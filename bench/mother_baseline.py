"""A MoTHer-style model tree, the peer method beside ``wtraj.trajectory_tree`` in analysis_quality.py.

MoTHer (Horwitz et al., "Unsupervised Model Tree Heritage Recovery", ICLR
2025) recovers which model was fine-tuned from which: the tree is the
minimum directed spanning tree (Chu-Liu/Edmonds) of the distances between
models, where an edge that runs against the direction weight kurtosis
changes in is charged a penalty ``lam``. Kurtosis rises during
generalisation and falls during fine-tuning, so the direction of change is
chosen per tree: both are tried and the cheaper arborescence is kept.

What this rendering takes from the paper and what it fixes on its own:

- kurtosis of each checkpoint's whole flattened weight vector (the zoo
  stores no layer boundaries; the paper averages over chosen layers);
- ``lam`` = the median distance between distinct checkpoints (the paper
  scales the penalty to the distances; no value of it was tuned here);
- every checkpoint is a node (the paper's models are a model zoo, ours are
  checkpoints of runs: a run's own steps are edges of the tree too).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from scipy.stats import kurtosis


def weight_kurtosis(X: np.ndarray) -> np.ndarray:
    """Excess kurtosis of each row's values, computed in float64."""
    return kurtosis(np.asarray(X, dtype=np.float64), axis=1, fisher=True, bias=True)


def mother_tree(X: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Parent of each row (-1 at the root) of the kurtosis-directed minimum arborescence of ``D``."""
    n = D.shape[0]
    if n == 1:
        return np.full(1, -1, dtype=np.int64)
    k = weight_kurtosis(X)
    off_diagonal = D[~np.eye(n, dtype=bool)]
    lam = float(np.median(off_diagonal[off_diagonal > 0])) if np.any(off_diagonal > 0) else 1.0
    best, best_cost = None, np.inf
    for rising in (True, False):
        # an edge parent -> child is against the direction when kurtosis moves the other way
        against = (k[None, :] < k[:, None]) if rising else (k[None, :] > k[:, None])
        cost = D + lam * against
        graph = nx.DiGraph()
        graph.add_nodes_from(range(n))
        graph.add_weighted_edges_from(
            (i, j, float(cost[i, j])) for i in range(n) for j in range(n) if i != j
        )
        tree = nx.minimum_spanning_arborescence(graph, attr="weight", preserve_attrs=True)
        total = sum(w for _, _, w in tree.edges(data="weight"))
        if total < best_cost:
            best, best_cost = tree, total
    parent = np.full(n, -1, dtype=np.int64)
    for i, j in best.edges():
        parent[j] = i
    return parent
