"""Numba kernels of :class:`wtraj.TrajectoryMonitor` for float32/float64 tensors on the CPU.

One pass over a tensor does everything a monitor step needs from it: the
squared step, the dot product with the previous step, the squared norm, the
count-sketch update and the rotation of the snapshots. The torch path in
:mod:`wtraj.monitor` does the same in a dozen tensor operations, each a full
pass with float64 temporaries; this reads 12 and writes 4 bytes per float32
element.

Sums are float64: products of exact float64 differences, summed in blocks of
:data:`BLOCK` elements whose partial sums are then added, so the rounding
error grows with ``BLOCK + n / BLOCK`` rather than ``n``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from wtraj._count_sketch import CHUNK

# elements per partial sum; CHUNK is a multiple, so a block never straddles two chunks
BLOCK = 4096


@njit(cache=True, nogil=True, inline="always")
def _sketch_block(sketch, values64, start, exact, rows_low, signs_low, rows_high, signs_high, width):
    """Add ``values64`` (elements ``start, start + 1, ...`` of one chunk) to the sketch."""
    n = values64.shape[0]
    if exact:
        for k in range(n):
            sketch[start + k] += values64[k]
        return
    q = start // CHUNK
    r0 = start - q * CHUNK
    shift = rows_high[q]
    sign = signs_high[q]
    for k in range(n):
        bucket = rows_low[r0 + k] + shift
        if bucket >= width:
            bucket -= width
        sketch[bucket] += signs_low[r0 + k] * sign * values64[k]


@njit(cache=True, nogil=True)
def snapshot_step(
    current, previous, before, has_before, sketch, exact,
    rows_low, signs_low, rows_high, signs_high, width,
):  # fmt: skip
    """``(||c - p||², <p - b, c - p>, ||c||²)`` of one tensor; sketch ``c`` and copy it into ``b``.

    ``current``, ``previous`` and ``before`` are 1-D arrays of one dtype
    (``before`` is read and then overwritten with ``current`` only when
    ``has_before``); ``sketch`` is the float64 sketch of ``current`` being built.
    """
    n = current.shape[0]
    step = 0.0
    dot = 0.0
    norm = 0.0
    values = np.empty(BLOCK, dtype=np.float64)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        step_part = 0.0
        dot_part = 0.0
        norm_part = 0.0
        for j in range(start, stop):
            c = np.float64(current[j])
            p = np.float64(previous[j])
            d = c - p
            step_part += d * d
            norm_part += c * c
            if has_before:
                dot_part += (p - np.float64(before[j])) * d
                before[j] = current[j]
            values[j - start] = c
        _sketch_block(
            sketch, values[: stop - start], start, exact,
            rows_low, signs_low, rows_high, signs_high, width,
        )  # fmt: skip
        step += step_part
        dot += dot_part
        norm += norm_part
    return step, dot, norm


@njit(cache=True, nogil=True)
def sketch_step(current, sketch, exact, rows_low, signs_low, rows_high, signs_high, width):
    """``||c||²`` of one tensor, adding ``c`` to its float64 ``sketch``."""
    n = current.shape[0]
    norm = 0.0
    values = np.empty(BLOCK, dtype=np.float64)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        norm_part = 0.0
        for j in range(start, stop):
            c = np.float64(current[j])
            norm_part += c * c
            values[j - start] = c
        _sketch_block(
            sketch, values[: stop - start], start, exact,
            rows_low, signs_low, rows_high, signs_high, width,
        )  # fmt: skip
        norm += norm_part
    return norm
