"""What the Triton launchers share: input checks and how D is split across programs."""

import torch

from wtraj._backend import triton_interpreted

# Aim for this many programs per streaming multiprocessor, so that a launch
# with few tiles (few checkpoints, huge D) still fills the GPU.
PROGRAMS_PER_SM = 4
# Under the interpreter every program runs in Python: keep launches tiny.
INTERPRETED_PROGRAMS = 4


def check_block(data, name):
    """A block must be a 2-D torch tensor whose last axis is contiguous, on CUDA (or interpreted)."""
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"the Triton backend takes torch tensors; {name} is {type(data).__name__}.")
    if data.device.type != "cuda" and not triton_interpreted():
        raise ValueError(f"the Triton backend needs CUDA tensors; {name} is on {data.device}.")
    if data.ndim != 2 or (data.shape[1] > 1 and data.stride(1) != 1):
        raise ValueError(f"{name} must be 2-D with a contiguous last axis.")


def target_programs(device) -> int:
    if triton_interpreted() or device.type != "cuda":
        return INTERPRETED_PROGRAMS
    return PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count


def split_columns(width: int, tiles: int, block_d: int, device) -> tuple[int, int]:
    """(n_splits, columns per split): enough splits of D to give every SM work.

    Each split's partial sums land in their own slot and are summed in a
    second pass, so the result does not depend on scheduling.
    """
    blocks = max(1, -(-width // block_d))
    n_splits = max(1, min(blocks, -(-target_programs(device) // max(1, tiles))))
    chunk = -(-blocks // n_splits) * block_d
    return -(-width // chunk), chunk
