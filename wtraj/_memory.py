"""The memory budget of a pass: how many bytes its block buffers may take."""

from __future__ import annotations

import os
import re

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
DEFAULT_BUDGET_CAP = 2 << 30


def total_memory() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resolve_memory_budget(budget: int | str | None) -> int:
    """Bytes from ``budget``: an int, a string such as ``"512MB"`` or ``"2GiB"``, or None.

    None means the default: an eighth of the machine's memory, at most 2 GiB.
    """
    if budget is None:
        return min(DEFAULT_BUDGET_CAP, total_memory() // 8)
    if isinstance(budget, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", budget)
        unit = match.group(2).upper() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"memory_budget={budget!r} is not a size; write e.g. 2000000000, '512MB' or '2GiB'."
            )
        budget = int(float(match.group(1)) * _UNITS[unit])
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"memory_budget must be an int or a string like '2GiB'; got {budget!r}.")
    if budget <= 0:
        raise ValueError(f"memory_budget must be positive; got {budget}.")
    return budget
