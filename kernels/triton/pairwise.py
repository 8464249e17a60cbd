r"""Pairwise sums over one column block, on the GPU.

Same sums as ``kernels/numba/pairwise.py`` (squared differences, absolute
differences, products). Tiled over pairs (``BLOCK_N x BLOCK_M`` rows) and over
D: each program sums its split of the columns in ``BLOCK_D`` tiles, in
float32 within a tile (float64 for float64 input) and float64 across tiles, and writes its own partial
sums; a second pass adds the splits in a fixed order (deterministic, no atomics).
``unitdiff`` (differences of rows scaled to unit norm, for cosine) is float64
throughout, for the reason given in ``kernels/numba/pairwise.py``.
"""

import torch
import triton
import triton.language as tl

from wtraj.kernels.contract import ALL_PATH_SUMS, PairOp
from wtraj.kernels.triton._launch import check_block, split_columns
from wtraj.kernels.triton.steps import steps_block

# The op codes the kernel takes as its OP constant (Triton reads only constexpr globals).
_ABSDIFF = tl.constexpr(PairOp.ABSDIFF.code)
_DOT = tl.constexpr(PairOp.DOT.code)
_UNITDIFF = tl.constexpr(PairOp.UNITDIFF.code)


@triton.jit
def _pairwise_partial_kernel(
    # pointers
    x_ptr, y_ptr, partial_ptr, x_scale_ptr, y_scale_ptr,
    # sizes
    n_rows, m_rows, width, split_width, x_col0, y_col0,
    # strides
    stride_xn, stride_yn, stride_ps, stride_pn,
    # meta-parameters
    OP: tl.constexpr, SYMMETRIC: tl.constexpr, FLOAT64: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_s = tl.program_id(2).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_n = offs_n < n_rows
    mask_m = offs_m < m_rows
    x_rows = x_ptr + offs_n.to(tl.int64)[:, None] * stride_xn  # [BLOCK_N, 1]
    y_rows = y_ptr + offs_m.to(tl.int64)[:, None] * stride_yn  # [BLOCK_M, 1]

    col_lo = pid_s * split_width
    col_hi = tl.minimum(col_lo + split_width, width)
    if SYMMETRIC:
        # tiles below the diagonal are the mirror of tiles above it: skip their columns
        col_hi = tl.where(pid_m < pid_n, col_lo, col_hi)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float64)
    for k0 in range(col_lo, col_hi, BLOCK_D):
        offs_d = k0 + tl.arange(0, BLOCK_D).to(tl.int64)
        mask_d = offs_d < col_hi
        x = tl.load(x_rows + (x_col0 + offs_d)[None, :], mask=mask_n[:, None] & mask_d[None, :],
                    other=0.0)  # [BLOCK_N, BLOCK_D]
        y = tl.load(y_rows + (y_col0 + offs_d)[None, :], mask=mask_m[:, None] & mask_d[None, :],
                    other=0.0)  # [BLOCK_M, BLOCK_D]
        # tiles are summed in float32, or in float64 for float64 input
        if FLOAT64:
            x = x.to(tl.float64)
            y = y.to(tl.float64)
        else:
            x = x.to(tl.float32)
            y = y.to(tl.float32)
        if OP == _UNITDIFF:
            x = x * tl.load(x_scale_ptr + offs_n, mask=mask_n, other=0.0)[:, None]
            y = y * tl.load(y_scale_ptr + offs_m, mask=mask_m, other=0.0)[:, None]
        if OP == _DOT:
            terms = x[:, None, :] * y[None, :, :]
        else:
            diff = x[:, None, :] - y[None, :, :]  # [BLOCK_N, BLOCK_M, BLOCK_D]
            terms = tl.abs(diff) if OP == _ABSDIFF else diff * diff
        acc += tl.sum(terms, axis=2).to(tl.float64)

    out_ptrs = partial_ptr + pid_s * stride_ps + offs_n.to(tl.int64)[:, None] * stride_pn + offs_m[None, :]
    tl.store(out_ptrs, acc, mask=mask_n[:, None] & mask_m[None, :])


def _tile_sizes(n_rows, m_rows):
    block_n = min(16, triton.next_power_of_2(n_rows))
    block_m = min(16, triton.next_power_of_2(m_rows))
    # keep the [BLOCK_N, BLOCK_M, BLOCK_D] product at 8192 values per program
    block_d = max(16, 8192 // (block_n * block_m))
    return block_n, block_m, block_d


def pairwise_block(x, x_start, x_stop, y, y_start, y_stop, op, out, scales=None, steps=None,
                   path_sums=ALL_PATH_SUMS):
    """Add one column block's pairwise sums to ``out`` (a float64 tensor on x's device).

    Same contract as :func:`wtraj.kernels.numba.pairwise.pairwise_block`;
    ``steps`` gets x's path sums from a second launch (:func:`wtraj.kernels.triton.steps.steps_block`).
    """
    check_block(x, "X")
    op = PairOp(op)
    symmetric = y is None
    if symmetric:
        y, y_start = x, x_start
    else:
        check_block(y, "Y")
    n_rows, m_rows = x.shape[0], y.shape[0]
    width = x_stop - x_start
    block_n, block_m, block_d = _tile_sizes(n_rows, m_rows)
    tiles = triton.cdiv(n_rows, block_n) * triton.cdiv(m_rows, block_m)
    n_splits, split_width = split_columns(width, tiles, block_d, x.device)
    partial = torch.zeros((n_splits, n_rows, m_rows), dtype=torch.float64, device=x.device)
    # UNITDIFF reads one float64 factor per row; the other ops, none (a stand-in keeps the signature)
    x_scale, y_scale = (
        (torch.as_tensor(s, dtype=torch.float64, device=x.device) for s in scales)
        if op is PairOp.UNITDIFF
        else (partial, partial)
    )
    grid = (triton.cdiv(n_rows, block_n), triton.cdiv(m_rows, block_m), n_splits)
    _pairwise_partial_kernel[grid](
        x, y, partial, x_scale, y_scale,
        n_rows, m_rows, width, split_width, x_start, y_start,
        x.stride(0), y.stride(0), partial.stride(0), partial.stride(1),
        OP=op.code, SYMMETRIC=symmetric, FLOAT64=x.dtype == torch.float64 or op is PairOp.UNITDIFF,
        BLOCK_N=block_n, BLOCK_M=block_m, BLOCK_D=block_d,
    )
    out += partial.sum(dim=0)
    if steps is not None:
        steps_block(x, x_start, x_stop, steps, path_sums)
