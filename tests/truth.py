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
    """2 sin(theta) / |x[i+2] - x[i]|: the circumcircle's chord over the sine of its inscribed angle.

    The triangle's angle at x[i+1] is pi - theta, of the same sine; theta from
    Kahan's formula above. (Heron's area from the three sides, even in Kahan's
    stable form, cancels for a nearly straight path: its sides add up.)
    """
    X = np.asarray(X, dtype=np.float64)
    chord = np.linalg.norm(X[2:] - X[:-2], axis=1)
    return 2 * np.sin(turning_angle_truth(X)) / chord
