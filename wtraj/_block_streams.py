"""Streams of blocks as the kernels need them: re-cut onto the column grid, and X paired with Y."""

from __future__ import annotations

from collections.abc import Iterator

from wtraj._blocks import COLUMN_ALIGN, Block, Columns, Source, all_columns
from wtraj._source import copy_columns, empty_rows_like


def on_grid(
    blocks: Iterator[Block], source: Source, max_width: int, columns: Columns | None
) -> Iterator[Block]:
    """Re-cut a stream of blocks so that every block starts on the COLUMN_ALIGN grid.

    The pairwise kernels sum tiles from the start of each block in float32;
    on the grid, a checkpoint source (cut at tensor boundaries) and an
    in-memory array tile the same columns and agree to float64 rounding.
    Blocks already on the grid pass through (those of every built-in
    source); others are gathered into a staging buffer of at most
    ``max_width`` columns, flushed at the end of each range of ``columns``.
    """
    width = max(COLUMN_ALIGN, max_width // COLUMN_ALIGN * COLUMN_ALIGN)
    range_ends = {hi for _, hi in (columns if columns is not None else all_columns(source.n_params))}
    staging, filled, offset = None, 0, 0
    for block in blocks:
        last = block.offset + block.width in range_ends
        if filled == 0 and block.offset % COLUMN_ALIGN == 0 and (last or block.width % COLUMN_ALIGN == 0):
            yield Block(block.data, block.start, block.stop, block.offset)
            continue
        done = 0
        while done < block.width:
            if staging is None:
                staging = empty_rows_like(block.data, source.n_checkpoints, width)
            if filled == 0:
                offset = block.offset + done
            take = min(width - filled, block.width - done)
            start = block.start + done
            copy_columns(staging[:, filled:], block.data[:, start : start + take])
            filled += take
            done += take
            if filled == width or (last and done == block.width):
                yield Block(staging, 0, filled, offset)
                filled = 0


def paired_blocks(
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
