"""The contract between ``wtraj._engine`` and the kernel backends: the ops, the rows, the interface.

Every backend (``wtraj.kernels.numba``, ``wtraj.kernels.triton`` and the
float64 ``wtraj.kernels.reference``) imports its op and row names from here,
so that none of them encodes either on its own.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, runtime_checkable

import numpy as np


class PairOp(str, enum.Enum):
    r"""The elementwise term a pairwise pass sums over the columns :math:`k`.

    A ``str`` enum: ``PairOp("sqdiff") is PairOp.SQDIFF`` and
    ``PairOp.SQDIFF == "sqdiff"``, so callers may pass either.
    """

    # (x_ik - y_jk)^2
    SQDIFF = "sqdiff"
    # |x_ik - y_jk|
    ABSDIFF = "absdiff"
    # x_ik y_jk
    DOT = "dot"
    # (s_i x_ik - t_j y_jk)^2 with row scales s, t (1/|x_i|, 1/|y_j|): unit vectors, for cosine
    UNITDIFF = "unitdiff"

    @property
    def code(self) -> int:
        """The op as a small integer, for compiled kernels that take it as a constant."""
        return _OP_CODES[self]


_OP_CODES = {op: code for code, op in enumerate(PairOp)}


class PathSum(enum.IntEnum):
    r"""The rows of the (N_PATH_SUMS, N) path sums that every backend's ``steps_block`` accumulates.

    For checkpoints :math:`x_i` with steps :math:`u = x_{i+1} - x_i` and
    :math:`v = x_{i+2} - x_{i+1}`, row ``r`` at column ``i`` sums over the
    parameters (rows past the last step or angle stay zero):
    """

    # sum x_i^2
    NORM2 = 0
    # sum u^2
    STEP2 = 1
    # sum (v - u)^2, the bend: the side opposite a small turning angle
    BEND2 = 2
    # sum (u + v)^2 = sum (x_{i+2} - x_i)^2, the skip: opposite pi minus a large one
    SKIP2 = 3
    # sum u v: the cosine of angles far from 0 and pi, whatever the steps' lengths
    STEP_DOT = 4


N_PATH_SUMS = len(PathSum)
# what a pass asks for unless it names fewer rows (each row a caller leaves out is work a backend may skip)
ALL_PATH_SUMS = frozenset(PathSum)


@runtime_checkable
class Backend(Protocol):
    """What ``wtraj._engine`` calls on a kernel backend package.

    Accumulators are float64 arrays of the backend's kind (NumPy on the host,
    torch on a GPU), made by ``zeros`` and read back by ``to_numpy``. A block
    is ``data[:, start:stop]`` of a 2-D array whose last axis is contiguous.
    """

    def zeros(self, shape: tuple[int, ...], like: Any = None) -> Any:
        """A float64 accumulator of ``shape`` where the kernels can add to it (beside ``like``)."""

    def to_numpy(self, accumulator: Any) -> np.ndarray:
        """The accumulator as a host NumPy array."""

    def pairwise_block(
        self, x: Any, x_start: int, x_stop: int, y: Any, y_start: int, y_stop: int, op: PairOp,
        out: Any, scales: tuple[Any, Any] | None = None, steps: Any = None,
        path_sums: frozenset[PathSum] = ALL_PATH_SUMS,
    ) -> None:
        """Add the block's sums of ``op`` over each pair of rows to ``out`` (N, M).

        ``y=None`` pairs x with itself (only ``i < j`` is meaningful);
        ``scales`` are the row factors of ``PairOp.UNITDIFF``. With ``steps``
        (N_PATH_SUMS, N), also add x's path sums to it as ``steps_block`` with
        ``path_sums`` would (in the same sweep over the block where a backend can).
        """

    def steps_block(
        self, x: Any, start: int, stop: int, out: Any, sums: frozenset[PathSum] = ALL_PATH_SUMS
    ) -> None:
        """Add the block's path sums to ``out`` (N_PATH_SUMS, N), rows as in :class:`PathSum`.

        At least the rows in ``sums``; a backend may add the others too, so
        the caller reads only those it asked for.
        """
