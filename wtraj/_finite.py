"""Locating the first NaN or Inf of a source, once the sums of a pass have shown there is one.

Any NaN or Inf in a row makes that row's sums non-finite, so a finite result
proves finite input and costs nothing; only a non-finite one sends the pass
here, to name the value at fault.
"""

from __future__ import annotations

import numpy as np

from wtraj._blocks import Columns, Source
from wtraj._dtypes import host_floats, is_torch_tensor

# (row, column, value) of a non-finite value
Location = tuple[int, int, float]


def first_nonfinite(source: Source, max_width: int, columns: Columns | None = None) -> Location | None:
    """The lowest row holding a NaN/Inf among ``columns``, with its first bad column and value."""
    best: Location | None = None
    for block in source.blocks(max_width, columns=columns):
        values = host_floats(block.data[:, block.start : block.stop])
        if is_torch_tensor(values):
            import torch

            bad = (~torch.isfinite(values)).cpu().numpy()
            values = values.float().cpu().numpy() if bad.any() else None
        else:
            bad = ~np.isfinite(values)
        if not bad.any():
            continue
        rows = np.flatnonzero(bad.any(axis=1))
        row = int(rows[0])
        if best is not None and best[0] <= row:
            continue
        col = int(np.argmax(bad[row]))
        best = (row, block.offset + col, float(values[row, col]))
    return best


def nonfinite_error(source: Source, location: Location) -> ValueError:
    row, column, value = location
    return ValueError(
        f"{source.describe(row, column)} is {value}: the input must be finite. "
        "Pass check_finite=False to compute anyway (results will be NaN or Inf)."
    )
