"""The progress bar of a pass (tqdm), shown only where someone can see it."""

from __future__ import annotations

import sys
from typing import Any

# passes over less than this many bytes finish too fast for a bar to help
PROGRESS_MIN_BYTES = 1 << 30


def progress_bar(total_bytes: int, progress: bool | None, description: str) -> Any:
    """A tqdm bar counting bytes, or a silent stand-in.

    Parameters
    ----------
    total_bytes : int
        Bytes the pass will read.
    progress : bool or None
        True: always show; False: never; None: show when stderr is a terminal
        and the pass reads at least ``PROGRESS_MIN_BYTES`` (1 GiB).
    description : str
        Label at the left of the bar.
    """
    show = progress if progress is not None else sys.stderr.isatty() and total_bytes >= PROGRESS_MIN_BYTES
    if not show:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(
        total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=description, leave=False
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass
