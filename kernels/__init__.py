"""Compiled kernels, installed as ``wtraj.kernels``: ``numba/`` for the CPU, ``triton/`` for CUDA GPUs.

Every backend package, and the float64 ``reference/`` that the tests take as
the truth, keeps the contract of ``contract.py``: the block interface
(``pairwise_block``, ``steps_block``, ``zeros``, ``to_numpy``) that
``wtraj._engine`` calls, the pairwise ops and the rows of the path sums. Each
kernel idea is one file stem in every backend folder (``pairwise.py``,
``steps.py``).
"""
