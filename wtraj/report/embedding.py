"""Classical multidimensional scaling (Torgerson–Gower) of a distance matrix.

The coordinates come from the N×N distance matrix alone: the eigenvectors of
the double-centred squared-distance matrix ``B = -½ J D² J`` with
``J = I - 11ᵀ/N``. For euclidean distances between checkpoints, ``B`` is the Gram
matrix of the centred checkpoints, so the embedding is exactly their PCA
projection, computed without ever holding the N×D data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Embedding:
    """Low-dimensional coordinates of N points.

    Attributes
    ----------
    coordinates : ndarray, shape (N, k)
        Principal coordinates, largest variance first (sign of each axis arbitrary
        but deterministic: the largest-magnitude entry of each axis is positive).
    explained_variance_ratio : ndarray, shape (k,)
        Share of the total variance (sum of the positive eigenvalues of ``B``)
        along each axis.
    """

    coordinates: np.ndarray
    explained_variance_ratio: np.ndarray


def classical_mds(D: np.ndarray, n_components: int = 3) -> Embedding:
    """Embed the points of a euclidean distance matrix in ``n_components`` dimensions.

    Parameters
    ----------
    D : ndarray, shape (N, N)
        Symmetric distances with a zero diagonal.
    n_components : int
        Number of axes ``k``; fewer are returned when ``B`` has fewer positive
        eigenvalues (padded with zero columns, with zero explained variance).

    Returns
    -------
    Embedding
        ``coordinates`` (N, k) and ``explained_variance_ratio`` (k,), in float64.

    Raises
    ------
    ValueError
        When D is not square, not symmetric, has NaN/Inf or negative entries.
    """
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square (N, N) distance matrix. (Shape was {D.shape}.)")
    if not np.all(np.isfinite(D)):
        raise ValueError("D has NaN or infinite entries.")
    if np.any(D < 0):
        raise ValueError("D has negative entries; distances are >= 0.")
    scale = max(float(np.abs(D).max()), np.finfo(np.float64).tiny)
    if not np.allclose(D, D.T, rtol=1e-10, atol=1e-12 * scale):
        raise ValueError("D is not symmetric.")
    if not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer; got {n_components!r}.")
    n = D.shape[0]
    squared = D**2
    # double centring without forming J: subtract row and column means, add the grand mean
    row_means = squared.mean(axis=1)
    B = -0.5 * (squared - row_means[:, None] - row_means[None, :] + squared.mean())
    eigenvalues, eigenvectors = np.linalg.eigh((B + B.T) / 2)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    positive = eigenvalues > eigenvalues[0] * 1e-12 if eigenvalues[0] > 0 else eigenvalues > 0
    total = eigenvalues[positive].sum()
    k = min(n_components, int(positive.sum()))
    coordinates = np.zeros((n, n_components))
    ratio = np.zeros(n_components)
    if k:
        vectors = eigenvectors[:, :k]
        # a deterministic sign per axis
        flips = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(k)])
        coordinates[:, :k] = vectors * flips * np.sqrt(eigenvalues[:k])
        ratio[:k] = eigenvalues[:k] / total
    return Embedding(coordinates, ratio)
