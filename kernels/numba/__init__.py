"""Numba CPU kernels: parallel over both cores, vectorised inner loops."""

from wtraj.kernels._host import to_numpy, zeros
from wtraj.kernels.numba.pairwise import pairwise_block
from wtraj.kernels.numba.steps import steps_block

__all__ = ["pairwise_block", "steps_block", "zeros", "to_numpy"]
