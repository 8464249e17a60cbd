"""Triton GPU kernels (also run on the CPU by Triton's interpreter, ``TRITON_INTERPRET=1``)."""

import torch

from wtraj.kernels.triton.pairwise import pairwise_block
from wtraj.kernels.triton.steps import steps_block

__all__ = ["pairwise_block", "steps_block", "zeros", "to_numpy"]


def zeros(shape, like=None):
    """A float64 accumulator on the device of ``like``."""
    return torch.zeros(shape, dtype=torch.float64, device=like.device)


def to_numpy(accumulator):
    return accumulator.cpu().numpy()
