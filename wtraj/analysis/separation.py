"""Tell training runs apart, also runs that share their initialisation.

Runs from one initialisation (or fine-tunes of one parent) share their first
checkpoints exactly and stay close for a while, so clustering the distances
puts their early checkpoints together and fails. wtraj separates runs in
three stages:

1. runs from different initialisations, cut apart at the links of the
   minimum spanning tree (:mod:`wtraj.analysis._links`);
2. in each remaining group, its start and the number of runs that leave it;
3. the runs of the group, as chains from the start
   (:mod:`wtraj.analysis._rooted`, :mod:`wtraj.analysis._ends`); a chain that also covers a fine-tune
   (it jumps to the fine-tune's tip and runs back along it, jumps back to
   where it branched and goes out along it, or runs along a slow fine-tune
   between two of its parent's checkpoints) is cut there, the run going on
   along the branch that keeps its step length
   (:func:`wtraj.analysis._branches.split_branches`).

Measured quality, on held-out training regimes too, and the known limits:
bench/RESULTS.md, "Analysis quality" (``python bench/analysis_quality.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wtraj.analysis._branches import split_branches
from wtraj.analysis._distances import Nodes, PassOptions, check_int, prepare_nodes
from wtraj.analysis._links import connected_parts, find_links
from wtraj.analysis._rooted import Rooted, chain_order, chain_parents, rooted_component
from wtraj.analysis._starts import orthogonal_links


def _split(D: np.ndarray, n_trajectories: int | None, norms: np.ndarray | None):
    """Components, their chain counts and chain labels for distinct checkpoints."""
    n = D.shape[0]
    if norms is not None:
        is_link, neighbour = orthogonal_links(D, norms)
    else:
        is_link, neighbour, _ = find_links(D)
    if n_trajectories is not None and is_link.sum() + 1 > n_trajectories:
        # fewer runs asked for than starts found: keep only the longest links
        links = np.flatnonzero(is_link)
        lengths = D[links, neighbour[links]]
        keep_links = links[np.argsort(-lengths, kind="stable")[: n_trajectories - 1]]
        is_link = np.zeros(n, dtype=bool)
        is_link[keep_links] = True
    component_of = connected_parts(n, neighbour, ~is_link)
    members = [np.flatnonzero(component_of == c) for c in range(component_of.max() + 1)]
    # one component (all runs from one start) shares D instead of copying N x N floats
    components = [
        rooted_component(D if len(members) == 1 else D[np.ix_(m, m)], None if norms is None else norms[m])
        for m in members
    ]
    if n_trajectories is None:
        counts = [c.best_k() for c in components]
    else:
        counts = _allocate(components, n_trajectories)
    return members, components, counts


def _allocate(components: list[Rooted], n_trajectories: int) -> list[int]:
    """Share ``n_trajectories`` chains among components, each extra one where it saves most."""
    counts = [1] * len(components)
    while sum(counts) < n_trajectories:
        savings = [
            c.cover(k)[1] - c.cover(k + 1)[1] if k < c.max_chains else -np.inf
            for c, k in zip(components, counts)
        ]
        best = int(np.argmax(savings))
        if not np.isfinite(savings[best]):
            raise ValueError(
                f"n_trajectories={n_trajectories} is more runs than the "
                f"{sum(c.D.shape[0] for c in components)} distinct checkpoints can form."
            )
        counts[best] += 1
    return counts


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Labels 0 .. k-1 in order of each label's first row."""
    values, first = np.unique(labels, return_index=True)
    rank = np.empty(values.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(values.shape[0])
    return rank[np.searchsorted(values, labels)]


def separate_nodes(
    D: np.ndarray, n_trajectories: int | None, norms: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run labels and tree parents (roots: -1) of distinct checkpoints (``norms``: _starts, _rooted)."""
    members, components, counts = _split(D, n_trajectories, norms)
    n = D.shape[0]
    labels = np.empty(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    offset = 0
    for m, component, k in zip(members, components, counts):
        chain = component.runs(k)
        orders = [chain_order(component, chain, c) for c in range(k)]
        if n_trajectories is None:
            runs = split_branches(component, chain, orders)
            chain = runs.labels
            # the tree follows the runs, branches hang where they left (see chain_parents)
            local = chain_parents(component, runs.mains, runs.branches, runs.hung)
        else:
            local = chain_parents(component, orders)
        labels[m] = offset + chain
        parent[m] = np.where(local >= 0, m[np.maximum(local, 0)], -1)
        offset += int(chain.max()) + 1
    return _renumber(labels), parent


def _prepare(X, n_trajectories, metric, question, options: PassOptions, norms) -> tuple[Nodes, int | None]:
    nodes = prepare_nodes(X, metric, 2, question, options, norms)
    if n_trajectories is None:
        return nodes, None
    n_trajectories = check_int(n_trajectories, "n_trajectories", 1, nodes.n_rows, "the number of checkpoints")
    if n_trajectories > nodes.D.shape[0]:
        raise ValueError(
            f"n_trajectories={n_trajectories} but only {nodes.D.shape[0]} of the "
            f"{nodes.n_rows} checkpoints are distinct."
        )
    return nodes, n_trajectories


def separate_trajectories(
    X: Any,
    n_trajectories: int | None = None,
    *,
    metric: str = "euclidean",
    norms: Any = None,
    backend: str | None = None,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
) -> np.ndarray:
    """Label each checkpoint with the training run it belongs to.

    Parameters
    ----------
    X : array_like, path, checkpoint set or ndarray of shape (N, N)
        Checkpoints of one or more runs, in any order and in any form
        :func:`wtraj.pairwise` accepts, or their distance matrix with
        ``metric="precomputed"``.
    n_trajectories : int, optional
        Number of runs; inferred when None (see :mod:`wtraj.analysis.separation`).
    metric : str
        ``"euclidean"`` (default), another :func:`wtraj.pairwise` metric, or
        ``"precomputed"``.
    norms : array_like, shape (N,), optional
        With ``metric="precomputed"``: the checkpoints' Euclidean norms (for
        example ``wtraj.trajectory_stats(X).norms``). Data bring their own
        (one pass gives distances and norms). With norms, runs from different
        initialisations are told apart by the near-right angle between them,
        whatever the optimizer, schedule or checkpoint cadence; without, by
        step lengths alone (see :mod:`wtraj.analysis._links`). Runs that
        share a start may also be rooted at the checkpoint of least norm
        (see :func:`wtraj.analysis._rooted.rooted_component`).
    backend, memory_budget, progress, group
        The pass over the data that computes the distances, as in :func:`wtraj.pairwise`.

    Returns
    -------
    ndarray, shape (N,), int64
        Run labels ``0 .. k-1``, numbered in order of each run's first row.
        A checkpoint shared by several runs (identical rows, such as the
        common initialisation) goes to one of them; identical rows share a label.

    Notes
    -----
    Time: O(N^2) for the tree and neighbour lists, the seriation of each
    group of runs that share a start (O(N^2 log N)), for ``k`` runs in such
    a group ``k`` sparse shortest paths per chain cover (O(k N K log N), with
    K = 20 + k candidate successors, at most 220) for two candidate starts
    and the runs, then sweeps of small matchings over the positions of its
    chains (O(N K W^2) each, W = ``RELINK_WINDOW``).
    Memory: the N x N matrix. Deterministic.

    Raises
    ------
    ValueError
        ``n_trajectories`` outside ``[1, N]`` or above the number of distinct
        checkpoints, fewer than 2 distinct checkpoints, or a bad distance matrix.
    TypeError
        ``n_trajectories`` is not an int.
    """
    options = PassOptions(backend, memory_budget, progress, group)
    nodes, n_trajectories = _prepare(X, n_trajectories, metric, "separate_trajectories", options, norms)
    labels, _ = separate_nodes(nodes.D, n_trajectories, nodes.norms)
    return labels[nodes.node_of]


def trajectory_tree(
    X: Any,
    n_trajectories: int | None = None,
    *,
    metric: str = "euclidean",
    norms: Any = None,
    backend: str | None = None,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    group: Any = None,
) -> np.ndarray:
    """Parent of each checkpoint in the tree of training runs (-1 at roots).

    Along a run, a checkpoint's parent is the previous checkpoint of that run;
    the first checkpoint of a run that shares a start hangs from the shared
    start, or from the checkpoint it branched from (the nearest checkpoint
    clearly behind it in progress). So does a checkpoint whose previous one on
    its recovered run lies ahead of it: a fine-tune that
    :func:`separate_trajectories` leaves inside its parent's run still hangs
    from the checkpoint it branched from. Each start of its own (a run from a
    different initialisation) is a root.

    Parameters
    ----------
    X, n_trajectories, metric, norms, backend, memory_budget, progress, group
        As in :func:`separate_trajectories`.

    Returns
    -------
    ndarray, shape (N,), int64
        Row index of each row's parent, -1 for roots. Identical rows: the
        first is the tree node, the others have it as parent.
    """
    options = PassOptions(backend, memory_budget, progress, group)
    nodes, n_trajectories = _prepare(X, n_trajectories, metric, "trajectory_tree", options, norms)
    _, parent = separate_nodes(nodes.D, n_trajectories, nodes.norms)
    return expand_parents(nodes, parent)


def expand_parents(nodes: Nodes, parent: np.ndarray) -> np.ndarray:
    """Parents of rows from parents of distinct nodes (duplicates hang from their first row)."""
    rows_parent = np.where(parent >= 0, nodes.representative[np.maximum(parent, 0)], -1)
    result = rows_parent[nodes.node_of]
    duplicate = np.arange(nodes.n_rows) != nodes.representative[nodes.node_of]
    result[duplicate] = nodes.representative[nodes.node_of[duplicate]]
    return result.astype(np.int64)
