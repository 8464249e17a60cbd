"""Ground truth computed independently of wtraj, in float64, by the textbook formulas."""

import numpy as np


def pairwise_truth(X, Y=None, metric="euclidean"):
    X = np.asarray(X, dtype=np.float64)
    Y = X if Y is None else np.asarray(Y, dtype=np.float64)
    diff = X[:, None, :] - Y[None, :, :]
    if metric == "sqeuclidean":
        return (diff**2).sum(-1)
    if metric == "euclidean":
        return np.sqrt((diff**2).sum(-1))
    if metric == "cityblock":
        return np.abs(diff).sum(-1)
    if metric == "inner":
        return X @ Y.T
    if metric == "cosine":
        # half the squared distance between the unit vectors: accurate near 0
        xu = X / np.linalg.norm(X, axis=1, keepdims=True)
        yu = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        return ((xu[:, None, :] - yu[None, :, :]) ** 2).sum(-1) / 2
    raise ValueError(metric)


def turning_angle_truth(X):
    """Kahan's angle formula 2 atan2(|u^ - v^|, |u^ + v^|): accurate for every angle."""
    X = np.asarray(X, dtype=np.float64)
    steps = np.diff(X, axis=0)
    unit = steps / np.linalg.norm(steps, axis=1, keepdims=True)
    u, v = unit[:-1], unit[1:]
    return 2 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))


def menger_truth(X):
    """4 area / (a b c), with the area by Kahan's stable Heron formula on sorted sides."""
    X = np.asarray(X, dtype=np.float64)
    a = np.linalg.norm(X[1:-1] - X[:-2], axis=1)
    b = np.linalg.norm(X[2:] - X[1:-1], axis=1)
    c = np.linalg.norm(X[2:] - X[:-2], axis=1)
    s = np.sort(np.stack([a, b, c]), axis=0)[::-1]
    p, q, r = s
    area = 0.25 * np.sqrt(np.maximum((p + (q + r)) * (r - (p - q)) * (r + (p - q)) * (p + (q - r)), 0.0))
    return 4 * area / (a * b * c)
