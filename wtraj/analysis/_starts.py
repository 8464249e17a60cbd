"""Stage 1 of run separation, where the checkpoints' norms are known: different starts are orthogonal.

Independently drawn initialisations are, in high dimension, nearly
orthogonal vectors, and a step of training is short next to the weights: two
neighbouring checkpoints of one run keep a cosine near 1, while the closest
checkpoints of runs from two initialisations make a near-right angle. An
edge of the minimum spanning tree joins runs of different starts when the
cosine of its two ends is below ``SAME_START_COSINE``. Unlike step lengths,
this does not depend on the optimizer, the schedule or the checkpoint
cadence. Fine-tunes and runs that share an initialisation keep their common
weights and stay joined: :mod:`wtraj.analysis._rooted` separates them.
Measured cosines: bench/RESULTS.md, "Analysis constants".
"""

from __future__ import annotations

import numpy as np

from wtraj.analysis._tree import minimum_spanning_tree

# closer to orthogonal than to parallel
SAME_START_COSINE = 0.5


def cosine_of(D: np.ndarray, norms: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine of the angle between checkpoints ``i`` and ``j`` as vectors, from distances and norms.

    ``1 - cos = (|a - b|^2 - (|a| - |b|)^2) / (2 |a| |b|)``: both terms are
    small for nearby checkpoints and neither cancels against a norm. NaN
    where a checkpoint is all zeros.
    """
    a, b = norms[i], norms[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - (D[i, j] ** 2 - (a - b) ** 2) / (2.0 * a * b)


def orthogonal_links(D: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum spanning tree edges ``(i, neighbour[i])`` that join runs of different starts.

    Returns
    -------
    is_link : ndarray, shape (N,), bool
    neighbour : ndarray, shape (N,), int64
        The tree (see :func:`wtraj.analysis._tree.minimum_spanning_tree`).
    """
    neighbour, _ = minimum_spanning_tree(np.ascontiguousarray(D))
    is_link = np.zeros(D.shape[0], dtype=bool)
    i = np.arange(1, D.shape[0])
    # a zero checkpoint has no direction: its edge is no evidence of another start
    is_link[i] = cosine_of(D, norms, i, neighbour[i]) < SAME_START_COSINE
    return is_link, neighbour
