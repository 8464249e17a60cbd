r"""Per-checkpoint sums along the path over one column block, on the GPU.

Same sums as ``kernels/numba/steps.py``, all in float64. The columns are split
across programs; each program walks down the rows once per ``BLOCK_D`` tile,
keeping the two previous rows in registers, so every value is loaded once.
Its partial sums go to its own slot and a second pass adds the slots.
"""

import torch
import triton
import triton.language as tl

from wtraj.kernels.contract import ALL_PATH_SUMS, N_PATH_SUMS, PathSum
from wtraj.kernels.triton._launch import check_block, split_columns

BLOCK_D = 1024
# The rows of the path sums (Triton reads only constexpr globals).
_NORM2 = tl.constexpr(int(PathSum.NORM2))
_STEP2 = tl.constexpr(int(PathSum.STEP2))
_BEND2 = tl.constexpr(int(PathSum.BEND2))
_SKIP2 = tl.constexpr(int(PathSum.SKIP2))
_STEP_DOT = tl.constexpr(int(PathSum.STEP_DOT))


@triton.jit
def _steps_partial_kernel(
    # pointers
    x_ptr, partial_ptr,
    # sizes
    n_rows, width, split_width, x_col0,
    # strides
    stride_xn, stride_ps, stride_pr,
    # meta-parameters
    BLOCK_D: tl.constexpr,
):
    pid_s = tl.program_id(0).to(tl.int64)
    col_lo = pid_s * split_width
    col_hi = tl.minimum(col_lo + split_width, width)
    # partial[pid_s] is (N_PATH_SUMS, n_rows), rows as in PathSum
    sums_ptr = partial_ptr + pid_s * stride_ps
    norm2_ptr = sums_ptr + _NORM2 * stride_pr
    step2_ptr = sums_ptr + _STEP2 * stride_pr
    bend2_ptr = sums_ptr + _BEND2 * stride_pr
    skip2_ptr = sums_ptr + _SKIP2 * stride_pr
    dot_ptr = sums_ptr + _STEP_DOT * stride_pr
    for k0 in range(col_lo, col_hi, BLOCK_D):
        offs_d = k0 + tl.arange(0, BLOCK_D).to(tl.int64)
        mask_d = offs_d < col_hi
        before_prev = tl.zeros((BLOCK_D,), dtype=tl.float64)
        prev = tl.zeros((BLOCK_D,), dtype=tl.float64)
        for i in range(0, n_rows):
            row_ptr = x_ptr + i * stride_xn + x_col0
            cur = tl.load(row_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float64)
            step = cur - prev
            prev_step = prev - before_prev
            bend = step - prev_step
            skip = cur - before_prev
            tl.store(norm2_ptr + i, tl.load(norm2_ptr + i) + tl.sum(cur * cur))
            # row i closes step i-1 and, with it, the angle at i-2
            has_step = i >= 1
            has_angle = i >= 2
            j = tl.maximum(i - 1, 0)
            h = tl.maximum(i - 2, 0)
            tl.store(step2_ptr + j, tl.load(step2_ptr + j) + tl.sum(step * step), mask=has_step)
            tl.store(bend2_ptr + h, tl.load(bend2_ptr + h) + tl.sum(bend * bend), mask=has_angle)
            tl.store(skip2_ptr + h, tl.load(skip2_ptr + h) + tl.sum(skip * skip), mask=has_angle)
            tl.store(dot_ptr + h, tl.load(dot_ptr + h) + tl.sum(prev_step * step), mask=has_angle)
            before_prev = prev
            prev = cur


def steps_block(x, start, stop, out, sums=ALL_PATH_SUMS):
    """Add one column block's path sums to ``out`` (N_PATH_SUMS, N), a float64 tensor on x's device.

    Same contract as :func:`wtraj.kernels.numba.steps.steps_block`, except
    that all the rows are added whatever ``sums`` asks for (a kernel per set
    of rows, as on the CPU, is left until it can be timed on a GPU).
    """
    check_block(x, "X")
    n_rows = x.shape[0]
    width = stop - start
    n_splits, split_width = split_columns(width, 1, BLOCK_D, x.device)
    partial = torch.zeros((n_splits, N_PATH_SUMS, n_rows), dtype=torch.float64, device=x.device)
    _steps_partial_kernel[(n_splits,)](
        x, partial,
        n_rows, width, split_width, start,
        x.stride(0), partial.stride(0), partial.stride(1),
        BLOCK_D=BLOCK_D,
    )
    out += partial.sum(dim=0)
