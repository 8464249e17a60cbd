"""The accumulators of the backends that run on the host (Numba, the float64 reference)."""

import numpy as np


def zeros(shape, like=None):
    """A float64 accumulator on the host (``like`` is where the data lives: the host already)."""
    return np.zeros(shape, dtype=np.float64)


def to_numpy(accumulator):
    """A host accumulator is a NumPy array already."""
    return accumulator
