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
# ...and this many times as much at the start of a pass, for the second or so that
# a new process takes to load its kernels
START_FACTOR = 2

Span = TypeVar("Span")


def readahead_blocks(block_bytes: int) -> int:
    """How many blocks of ``block_bytes`` to ask for ahead (0 where the system has no such hint)."""
    if not hasattr(os, "posix_fadvise") or block_bytes <= 0:
        return 0
    return min(READAHEAD_BYTES, total_memory() // 16) // block_bytes


def with_lookahead(spans: Iterable[Span], n: int) -> Iterator[tuple[Span, list[Span]]]:
    """Each span with those to ask for now, so that when span ``k`` is read, spans up to ``k + n`` have been.

    Every later span is asked for once. The first span asks for the
    ``START_FACTOR * n`` after it, and the later ones for none until the
    window is back to ``n``: a pass in a new process loads its kernels
    (Numba's disk cache) while its first blocks are read, and the disk
    keeps reading meanwhile.
    """
    spans = iter(spans)
    # spans taken from ``spans`` and not handed out yet; the first is span k
    taken: deque = deque()
    k, asked = 0, 0
    exhausted = False
    while True:
        reach = k + (START_FACTOR * n if k == 0 else n)
        while not exhausted and k + len(taken) <= reach:
            following = next(spans, None)
            if following is None:
                exhausted = True
            else:
                taken.append(following)
        if not taken:
            return
        # spans asked[+1] to reach (those that exist), counted from span k at taken[0]
        ask = list(islice(taken, max(1, asked - k + 1), None))
        asked = max(asked, k + len(taken) - 1)
        yield taken.popleft(), ask
        k += 1


def advise_willneed(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start reading ``length`` bytes at ``offset``; a hint, so a refusal is ignored."""
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
    except OSError:
        # some file systems (FUSE, network mounts) refuse the hint; the reads do not need it
        pass
