"""Positional reads straight into a buffer, and the open files of one pass."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np


class OpenFiles:
    """File descriptors opened on first use and closed together at the end of a pass."""

    def __init__(self):
        self._fds: dict[Path, int] = {}
        # the reading threads share one descriptor per file
        self._lock = threading.Lock()

    def fd(self, path: Path) -> int:
        with self._lock:
            fd = self._fds.get(path)
            if fd is None:
                fd = self._fds[path] = os.open(path, os.O_RDONLY)
            return fd

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def read_exactly(fd: int, out: np.ndarray, offset: int, what: str) -> None:
    """Fill the bytes of ``out`` (C-contiguous) from the file at ``offset``.

    ``os.preadv`` releases the GIL and leaves readahead to the kernel, and
    measured faster than copying from a memory map (bench/RESULTS.md).

    Raises
    ------
    ValueError
        If the file ends first (it was truncated after it was opened).
    """
    view = memoryview(out).cast("B")
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise ValueError(
                f"{what}: the file ended {len(view) - done} bytes early (truncated while being read?)."
            )
        done += n
