"""Compiled kernels, installed as ``wtraj.kernels``: ``numba/`` for the CPU, ``triton/`` for CUDA GPUs.

Every backend package exposes the same block-level interface, used by
``wtraj._engine``: ``pairwise_block``, ``steps_block``, ``zeros`` and
``to_numpy``. Its float64 reference lives in ``wtraj.reference``.
"""
