"""Read ahead: ask the page cache for the blocks after the one being read, so the disk never waits.

A pass holds two block buffers; when the kernels stall (their first call
loads them from Numba's cache, or the cores are shared), the reader stops
after one block and the disk would fall idle. ``posix_fadvise(WILLNEED)`` on
the byte ranges of the next blocks keeps the disk reading into the page cache
meanwhile, without more memory of the process's own: the window is bounded,
and page-cache pages are reclaimable.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from wtraj._memory import total_memory

# Bytes of upcoming blocks asked for ahead of the block being read: about half a
# second of a fast disk, and at most a sixteenth of the machine's memory
READAHEAD_BYTES = 1 << 30

Span = TypeVar("Span")


def readahead_blocks(block_bytes: int) -> int:
    """How many blocks of ``block_bytes`` to ask for ahead (0 where the system has no such hint)."""
    if not hasattr(os, "posix_fadvise") or block_bytes <= 0:
        return 0
    return min(READAHEAD_BYTES, total_memory() // 16) // block_bytes


def with_lookahead(spans: Iterable[Span], n: int) -> Iterator[tuple[Span, list[Span]]]:
    """Each span with those to ask for now: the first with the ``n`` after it, each later one with one more.

    So when span ``k`` is read, spans up to ``k + n`` have been asked for.
    """
    spans = iter(spans)
    if n == 0:
        for span in spans:
            yield span, []
        return
    window = deque(islice(spans, n))
    first = True
    while window:
        span = window.popleft()
        ask = list(window) if first else []
        first = False
        following = next(spans, None)
        if following is not None:
            window.append(following)
            ask.append(following)
        yield span, ask


def advise_willneed(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start reading ``length`` bytes at ``offset``; a hint, so a refusal is ignored."""
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
    except OSError:
        # some file systems (FUSE, network mounts) refuse the hint; the reads do not need it
        pass
