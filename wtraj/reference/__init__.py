"""The float64 reference backend: plain NumPy, obviously right, the ground truth of every test.

It has the same block interface as ``wtraj.kernels.numba`` and
``wtraj.kernels.triton`` and runs with ``backend="reference"``. Each block is
widened to a block-sized float64 copy; the data as a whole never is.
"""

import numpy as np

from wtraj.reference.pairwise import pairwise_block
from wtraj.reference.steps import steps_block

__all__ = ["pairwise_block", "steps_block", "zeros", "to_numpy"]


def zeros(shape, like=None):
    """A float64 accumulator on the host."""
    return np.zeros(shape, dtype=np.float64)


def to_numpy(accumulator):
    return accumulator
