"""Datasets of the evaluation zoo and the data shifts applied to them.

Three training sets, all small enough to train on one CPU core in seconds:

- ``digits``: scikit-learn's 1,797 greyscale 8x8 digit images in [0, 1],
  shape (n, 1, 8, 8), 10 classes.
- ``wine``: scikit-learn's 178 wines, 13 chemical measurements standardised
  to mean 0 and variance 1, 3 classes.
- ``sequence``: 1,200 generated sequences of 12 tokens from 0..9 whose label
  is the token that occurs most often: it occurs 5 times, every other token
  at most 4 times (a counting task for a recurrent network).

A shift replaces the training set from some iteration on (see
:func:`shifted`); the kinds and what ``strength`` means for each are in
:data:`SHIFT_KINDS`.
"""

from __future__ import annotations

from functools import cache

import numpy as np

DATASETS = ("digits", "wine", "sequence")
N_CLASSES = {"digits": 10, "wine": 3, "sequence": 10}
SEQUENCE_LENGTH = 12
SEQUENCE_VOCABULARY = 10
# the task, not the run, fixes the sequences: every run sees the same set
SEQUENCE_SEED = 0

# kind -> what ``strength`` in (0, 1] means
SHIFT_KINDS = {
    "invert": "a fraction s of the images inverted (1 - x)",
    "rotate": "rotation by 90 s degrees",
    "noise": "fixed additive Gaussian noise of standard deviation s (digits, wine); "
    "each token replaced by a random one with probability s / 2 (sequence)",
    "label_permutation": "max(2, round(s C)) of the C classes permuted in a cycle",
    "class_subset": "the samples of floor(s C) classes dropped",
    "new_source": "a fraction s of the samples replaced by samples of another source of the same shape: "
    "sklearn.datasets.make_classification data (digits: 64 features min-max scaled to [0, 1] as 8x8 "
    "images, 10 classes; wine: 13 standardised features, 3 classes)",
}
# shifts that have a meaning for each dataset
SUPPORTED_SHIFTS = {
    "digits": set(SHIFT_KINDS),
    "wine": {"noise", "label_permutation", "class_subset", "new_source"},
    "sequence": {"noise", "label_permutation", "class_subset"},
}


@cache
def load(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """The training set ``(inputs, labels)`` of ``dataset``; see the module docstring for shapes."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images / 16.0).astype(np.float32)[:, None], digits.target.astype(np.int64)
    if dataset == "wine":
        from sklearn.datasets import load_wine

        wine = load_wine()
        return _standardised(wine.data), wine.target.astype(np.int64)
    if dataset == "sequence":
        return _majority_sequences(1200, np.random.default_rng(SEQUENCE_SEED))
    raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}.")


def _standardised(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def _majority_sequences(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(SEQUENCE_VOCABULARY, size=n)
    tokens = np.empty((n, SEQUENCE_LENGTH), dtype=np.int64)
    for i, label in enumerate(labels):
        others = np.delete(np.arange(SEQUENCE_VOCABULARY), label)
        while True:
            filler = rng.choice(others, SEQUENCE_LENGTH - 5)
            if np.bincount(filler).max() <= 4:
                break
        tokens[i] = rng.permutation(np.concatenate([np.full(5, label), filler]))
    return tokens, labels.astype(np.int64)


def shifted(dataset: str, kind: str, strength: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training set of ``dataset`` after a shift of ``kind`` and ``strength``.

    ``seed`` fixes the random parts (noise, which classes, which samples).
    The result may hold fewer samples than the original (``class_subset``).
    """
    if dataset not in SUPPORTED_SHIFTS:
        raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}.")
    if kind not in SUPPORTED_SHIFTS[dataset]:
        raise ValueError(
            f"shift kind {kind!r} is not defined for dataset {dataset!r}; "
            f"choose one of {sorted(SUPPORTED_SHIFTS[dataset])}."
        )
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"shift strength must lie in (0, 1]; got {strength}.")
    inputs, labels = load(dataset)
    rng = np.random.default_rng(seed)
    n_classes = N_CLASSES[dataset]
    if kind == "invert":
        flip = (rng.random(len(labels)) < strength).reshape(-1, 1, 1, 1)
        return np.where(flip, 1 - inputs, inputs).astype(np.float32), labels
    if kind == "rotate":
        return _rotated(inputs, 90.0 * strength), labels
    if kind == "noise":
        if dataset == "sequence":
            replace = rng.random(inputs.shape) < strength / 2
            return np.where(replace, rng.integers(SEQUENCE_VOCABULARY, size=inputs.shape), inputs), labels
        return (inputs + strength * rng.standard_normal(inputs.shape)).astype(np.float32), labels
    if kind == "label_permutation":
        moved = rng.choice(n_classes, max(2, round(strength * n_classes)), replace=False)
        mapping = np.arange(n_classes)
        mapping[moved] = np.roll(moved, 1)
        return inputs, mapping[labels]
    if kind == "class_subset":
        dropped = rng.choice(n_classes, int(strength * n_classes), replace=False)
        keep = ~np.isin(labels, dropped)
        return inputs[keep], labels[keep]
    # new_source
    other_inputs, other_labels = _other_source(dataset, len(labels), seed)
    replace = rng.random(len(labels)) < strength
    mixed = np.where(replace.reshape((-1,) + (1,) * (inputs.ndim - 1)), other_inputs, inputs)
    return mixed.astype(np.float32), np.where(replace, other_labels, labels)


def _rotated(images: np.ndarray, degrees: float) -> np.ndarray:
    if degrees == 90.0:
        return np.ascontiguousarray(np.rot90(images, k=1, axes=(2, 3)))
    from scipy.ndimage import rotate

    return rotate(images, degrees, axes=(2, 3), reshape=False, order=1).astype(np.float32)


def _other_source(dataset: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    n_features = 64 if dataset == "digits" else 13
    x, y = make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=n_features // 2,
        n_redundant=n_features // 4,
        n_classes=N_CLASSES[dataset],
        n_clusters_per_class=1,
        # well separated, so that a run can learn the new source in a few epochs
        class_sep=2.0,
        random_state=seed,
    )
    if dataset == "digits":
        x = (x - x.min(0)) / (x.max(0) - x.min(0))
        return x.reshape(n, 1, 8, 8).astype(np.float32), y.astype(np.int64)
    return _standardised(x), y.astype(np.int64)
