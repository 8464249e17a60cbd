"""Block columns as a float64 NumPy array, whatever the block's array type."""

import numpy as np

from wtraj._dtypes import host_floats, is_torch_tensor


def float64_columns(data, start, stop):
    """``data[:, start:stop]`` widened to float64 (exact for every float input and bfloat16 bits)."""
    columns = data[:, start:stop]
    if is_torch_tensor(columns):
        import torch

        return columns.to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(host_floats(columns), dtype=np.float64)
