"""Numba CPU kernels: parallel over both cores, vectorised inner loops."""

import numpy as np
from wtraj.kernels.numba.pairwise import pairwise_block
from wtraj.kernels.numba.steps import steps_block

__all__ = ["pairwise_block", "steps_block", "zeros", "to_numpy"]


def zeros(shape, like=None):
    """A float64 accumulator on the host."""
    return np.zeros(shape, dtype=np.float64)


def to_numpy(accumulator):
    return accumulator
