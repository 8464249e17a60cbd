"""The float64 reference backend: plain NumPy, obviously right, the ground truth of every test.

It keeps the contract of ``wtraj.kernels.contract`` like the Numba and Triton
backends, with the same file stems, and runs with ``backend="reference"``.
Each block is widened to a block-sized float64 copy; the data as a whole
never is.
"""

from wtraj.kernels._host import to_numpy, zeros
from wtraj.kernels.reference.pairwise import pairwise_block
from wtraj.kernels.reference.steps import steps_block

__all__ = ["pairwise_block", "steps_block", "zeros", "to_numpy"]
