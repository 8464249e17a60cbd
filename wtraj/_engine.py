"""One pass over the data: blocks from the sources, through a backend's kernels, into float64 sums.

Every public function is a thin layer over :func:`accumulate`: it says which
sums it needs (pairwise sums of one elementwise op, path sums), gets them in a
single pass over the columns, and turns them into its result.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from wtraj._backend import resolve_backend
from wtraj._dtypes import host_floats, is_torch_tensor, itemsize
from wtraj._memory import resolve_memory_budget
from wtraj._ranges import FLOAT32_TILE_OPS, Float64Rows, all_finite, check_float64_range, rows_out_of_range
from wtraj._source import COLUMN_ALIGN, Block, Source, as_source, copy_columns, empty_rows_like
from wtraj.kernels.contract import N_PATH_SUMS

_BACKEND_MODULES = {
    "numba": "wtraj.kernels.numba",
    "triton": "wtraj.kernels.triton",
    "reference": "wtraj.kernels.reference",
}
# Show a progress bar by default only for passes at least this large.
PROGRESS_MIN_BYTES = 2 << 30


@dataclass
class Sums:
    """What one pass accumulated, in float64 NumPy arrays.

    ``pairs`` is (N, M) (upper triangle only when X is paired with itself),
    ``steps`` is (N_PATH_SUMS, N), rows as in ``wtraj.kernels.contract.PathSum``,
    ``y_steps`` is the same for Y. With ``by_layer`` each gets a leading
    layer axis in ``layer_pairs`` / ``layer_steps`` and the totals are their sums.
    """

    pairs: np.ndarray | None = None
    steps: np.ndarray | None = None
    y_steps: np.ndarray | None = None
    layer_pairs: np.ndarray | None = None
    layer_steps: np.ndarray | None = None


def device_of(X: Any) -> str:
    """Where the data lives ("cpu" or "cuda") without reading it."""
    if isinstance(X, Source):
        return X.device
    first = X[0] if isinstance(X, (list, tuple)) and X else X
    if is_torch_tensor(first):
        return first.device.type
    return "cpu"


def load_backend(name: str):
    """Import a backend's kernel package; a requested backend that cannot load raises."""
    try:
        return importlib.import_module(_BACKEND_MODULES[name])
    except ImportError as error:
        raise ImportError(
            f"backend={name!r} is not available: {error}. Install it (pip install 'wtraj[gpu]' "
            "for Triton) or choose another backend."
        ) from error


def prepare(X: Any, Y: Any = None, backend: str | None = None):
    """Resolve the backend for the data and wrap X (and Y) as sources.

    Returns ``(x_source, y_source or None, kernels)``.
    """
    device = device_of(X)
    if Y is not None and device_of(Y) != device:
        raise ValueError(
            f"X is on {device} but Y is on {device_of(Y)}; put both on the same device."
        )
    name = resolve_backend(backend, device)
    # Triton reads half precision natively; the CPU kernels take float32 for float16,
    # and bfloat16 as bit patterns that they widen as they load them.
    widen_half = name != "triton"
    x_source = as_source(X, "X", widen_half)
    y_source = None
    if Y is not None:
        y_source = as_source(Y, "Y", widen_half)
        if y_source.n_params != x_source.n_params:
            raise ValueError(
                f"X and Y must have the same number of parameters (columns); "
                f"X has {x_source.n_params}, Y has {y_source.n_params}."
            )
    return x_source, y_source, load_backend(name)


def accumulate(
    x_source: Source,
    kernels,
    *,
    y_source: Source | None = None,
    pair_op: str | None = None,
    pair_scales: tuple[np.ndarray, np.ndarray] | None = None,
    steps: bool = False,
    y_steps: bool = False,
    by_layer: bool = False,
    memory_budget: int | str | None = None,
    progress: bool | None = None,
    check_finite: bool = True,
) -> Sums:
    """Run one pass over the columns and return the requested float64 sums.

    ``pair_scales`` are the row factors of the ``"unitdiff"`` op (X's and Y's,
    or X's twice). Pairwise sums that float32 tiles may have lost to overflow
    or underflow are computed again from float64 copies of the rows involved
    (:func:`wtraj._ranges.rows_out_of_range`); float64 input whose squares leave float64's
    range raises or warns (:func:`wtraj._ranges.check_float64_range`).
    """
    n_slots = len(x_source.layers) if by_layer else 1
    n, m = x_source.n_checkpoints, (y_source.n_checkpoints if y_source else x_source.n_checkpoints)
    pairs_acc = steps_acc = y_steps_acc = None
    max_width = _max_width(x_source, y_source, memory_budget)
    # a checkpoint source opened with check_finite=False has said so already
    check_finite = check_finite and getattr(x_source, "check_finite", True)
    if pair_op == "unitdiff" and pair_scales is None:
        raise ValueError('pair_op="unitdiff" needs pair_scales, the factors of the rows.')

    x_blocks = x_source.blocks(max_width, by_layer=by_layer)
    y_blocks = y_source.blocks(max_width) if y_source else None
    if pair_op and not by_layer:
        # float32 tile sums must group the same columns whatever the source
        # (the built-in sources are on the grid already: this only checks them)
        x_blocks = _on_grid(x_blocks, x_source, max_width)
        y_blocks = _on_grid(y_blocks, y_source, max_width) if y_source else None
    blocks = _progress(_paired_blocks(x_blocks, y_blocks), x_source, y_source, progress)
    first = True
    for x_block, y_block in blocks:
        slot = _slot(x_block, x_source, by_layer)
        if first:
            # accumulators live where the data lives (the host, or the GPU for Triton)
            first = False
            like = x_block.data
            pairs_acc = kernels.zeros((n_slots, n, m), like) if pair_op else None
            steps_acc = kernels.zeros((n_slots, N_PATH_SUMS, n), like) if steps else None
            y_steps_acc = kernels.zeros((N_PATH_SUMS, m), like) if y_steps else None
        if pair_op:
            y_data = None if y_block is None else y_block.data
            y_start = 0 if y_block is None else y_block.start
            y_stop = 0 if y_block is None else y_block.stop
            kernels.pairwise_block(
                x_block.data, x_block.start, x_block.stop, y_data, y_start, y_stop,
                pair_op, pairs_acc[slot], pair_scales,
            )
        if steps:
            kernels.steps_block(x_block.data, x_block.start, x_block.stop, steps_acc[slot])
        if y_steps:
            kernels.steps_block(y_block.data, y_block.start, y_block.stop, y_steps_acc)

    sums = Sums()
    if pair_op:
        layer_pairs = kernels.to_numpy(pairs_acc)
        # without layers the one slot is the total (no copy of a matrix that may be
        # most of memory); with layers, the total is a matrix of its own
        sums.pairs = layer_pairs.sum(axis=0) if by_layer else layer_pairs[0]
        sums.layer_pairs = layer_pairs if by_layer else None
    if steps:
        layer_steps = kernels.to_numpy(steps_acc)
        sums.steps = layer_steps.sum(axis=0)
        sums.layer_steps = layer_steps if by_layer else None
    if y_steps:
        sums.y_steps = kernels.to_numpy(y_steps_acc)
    input_finite = _check_finite(sums, x_source, y_source, max_width, check_finite)
    if not input_finite:
        return sums
    wide_input = x_source.dtype == "float64"
    float32_tiles = pair_op in FLOAT32_TILE_OPS and not wide_input
    if float32_tiles:
        symmetric = y_source is None
        x_rows, y_rows = rows_out_of_range(sums.pairs, symmetric, x_source.n_params)
        if x_rows.size:
            # the pairs of those rows again, from float64 copies: the float64
            # kernels' range holds every square and product of float32 values
            wide = accumulate(
                Float64Rows(x_source, x_rows), kernels,
                y_source=None if symmetric else Float64Rows(y_source, y_rows),
                pair_op=pair_op, by_layer=by_layer,
                memory_budget=memory_budget, progress=progress, check_finite=False,
            )
            place = np.ix_(x_rows, x_rows if symmetric else y_rows)
            sums.pairs[place] = wide.pairs
            if by_layer:
                sums.layer_pairs[(slice(None), *place)] = wide.layer_pairs
    if wide_input:
        check_float64_range(sums, pair_op, y_source is None, x_source)
    return sums


def _slot(block: Block, source: Source, by_layer: bool) -> int:
    if not by_layer:
        return 0
    if block.layer < 0:
        raise ValueError(
            f"by_layer=True needs blocks attributed to tensors, but {type(source).__name__} "
            "yielded a block that spans several."
        )
    return block.layer


def _max_width(x_source: Source, y_source: Source | None, memory_budget) -> int:
    """Columns per block such that the pass's buffers stay within the memory budget."""
    budget = resolve_memory_budget(memory_budget)
    rows = x_source.n_checkpoints + (y_source.n_checkpoints if y_source else 0)
    # a block being computed, one being read ahead, one being filled: 3 buffers,
    # of at most 8 bytes per value
    return max(1, budget // (3 * 8 * rows))


def _on_grid(blocks: Iterator[Block], source: Source, max_width: int) -> Iterator[Block]:
    """Re-cut a stream of blocks so that every block starts on the COLUMN_ALIGN grid.

    The pairwise kernels sum tiles from the start of each block in float32;
    on the grid, a checkpoint source (cut at tensor boundaries) and an
    in-memory array tile the same columns and agree to float64 rounding.
    Blocks already on the grid pass through (those of every built-in
    source); others are gathered into a staging buffer of at most
    ``max_width`` columns.
    """
    width = max(COLUMN_ALIGN, max_width // COLUMN_ALIGN * COLUMN_ALIGN)
    staging, filled, offset = None, 0, 0
    for block in blocks:
        last = block.offset + block.width == source.n_params
        if filled == 0 and block.offset % COLUMN_ALIGN == 0 and (last or block.width % COLUMN_ALIGN == 0):
            yield Block(block.data, block.start, block.stop, block.offset)
            offset = block.offset + block.width
            continue
        done = 0
        while done < block.width:
            if staging is None:
                staging = empty_rows_like(block.data, source.n_checkpoints, width)
            take = min(width - filled, block.width - done)
            start = block.start + done
            copy_columns(staging[:, filled:], block.data[:, start : start + take])
            filled += take
            done += take
            if filled == width or (last and done == block.width):
                yield Block(staging, 0, filled, offset)
                offset += filled
                filled = 0


def _paired_blocks(
    x_blocks: Iterator[Block], y_blocks: Iterator[Block] | None
) -> Iterator[tuple[Block, Block | None]]:
    """Blocks of X, each with the block of Y that covers the same columns.

    Two sources may cut their columns differently (a checkpoint source cuts at
    tensor boundaries): each yielded pair is the overlap of the current blocks.
    """
    if y_blocks is None:
        for block in x_blocks:
            yield block, None
        return
    x_iter, y_iter = x_blocks, y_blocks
    x_block, y_block = next(x_iter, None), next(y_iter, None)
    while x_block is not None and y_block is not None:
        lo = max(x_block.offset, y_block.offset)
        hi = min(x_block.offset + x_block.width, y_block.offset + y_block.width)
        yield _cut(x_block, lo, hi), _cut(y_block, lo, hi)
        if x_block.offset + x_block.width == hi:
            x_block = next(x_iter, None)
        if y_block.offset + y_block.width == hi:
            y_block = next(y_iter, None)


def _cut(block: Block, lo: int, hi: int) -> Block:
    """The part of ``block`` covering flattened columns ``[lo, hi)``."""
    start = block.start + (lo - block.offset)
    return Block(block.data, start, start + (hi - lo), lo, block.layer)


def _progress(blocks, x_source: Source, y_source: Source | None, progress: bool | None):
    n_values = x_source.n_params * (
        x_source.n_checkpoints + (y_source.n_checkpoints if y_source else 0)
    )
    total_bytes = n_values * itemsize(x_source.dtype)
    if progress is None:
        progress = sys.stderr.isatty() and total_bytes >= PROGRESS_MIN_BYTES
    if not progress:
        return blocks
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return blocks
    return _with_bar(blocks, tqdm(total=x_source.n_params, unit="col", unit_scale=True, leave=False))


def _with_bar(blocks, bar):
    with bar:
        for x_block, y_block in blocks:
            yield x_block, y_block
            bar.update(x_block.width)



def _check_finite(
    sums: Sums, x_source: Source, y_source: Source | None, max_width: int, check_finite: bool
) -> bool:
    """Whether the input is finite, found through the sums it poisons; raise if not and asked to.

    Any NaN or Inf in a row makes that row's sums non-finite, so a finite
    result proves finite input and costs nothing. Only when a sum is not
    finite are the sources scanned to name the first bad value; a scan that
    finds none means finite values overflowed (the caller computes again).
    """
    results = [s for s in (sums.pairs, sums.steps, sums.y_steps) if s is not None]
    if all(all_finite(r) for r in results):
        return True
    for source in (x_source, y_source):
        if source is None:
            continue
        location = _first_nonfinite(source, max_width)
        if location is not None:
            if not check_finite:
                return False
            row, column, value = location
            raise ValueError(
                f"{source.describe(row, column)} is {value}: the input must be finite. "
                "Pass check_finite=False to compute anyway (results will be NaN or Inf)."
            )
    return True


def _first_nonfinite(source: Source, max_width: int) -> tuple[int, int, float] | None:
    """The lowest row holding a NaN/Inf, with its first bad column and value."""
    best: tuple[int, int, float] | None = None
    for block in source.blocks(max_width):
        columns = host_floats(block.data[:, block.start : block.stop])
        if is_torch_tensor(columns):
            import torch

            bad = (~torch.isfinite(columns)).cpu().numpy()
            values = columns.float().cpu().numpy() if bad.any() else None
        else:
            bad = ~np.isfinite(columns)
            values = columns
        if not bad.any():
            continue
        rows = np.flatnonzero(bad.any(axis=1))
        row = int(rows[0])
        if best is not None and best[0] <= row:
            continue
        col = int(np.argmax(bad[row]))
        best = (row, block.offset + col, float(values[row, col]))
    return best
