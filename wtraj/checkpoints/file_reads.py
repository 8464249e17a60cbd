"""Files as :func:`wtraj.open` found them, and the few descriptors a pass reads them through.

Every value is read with ``pread`` from a descriptor, never through a memory
map: a map of a file that is truncated while in use faults (SIGBUS) where a
read returns short and can be reported. A file may change between
``wtraj.open`` and a pass, or during one; each is therefore identified by
``(size, mtime_ns, inode, device)`` when its header is parsed and checked again
whenever a pass opens it and after its last read, so a pass never mixes two
versions of a file.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# descriptors one pass keeps open at most (besides those in use by a reading thread): a
# quarter of the process's limit (1024 on Linux, 256 on macOS), within these bounds, whatever
# the number of files; past it, files are closed least recently used first and reopened
MIN_OPEN_FILES = 16
MAX_OPEN_FILES = 1024


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """A file as it was when its header was parsed."""

    path: Path
    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: Path, fd: int) -> FileIdentity:
        """The identity of the open file ``fd``, found at ``path``."""
        st = os.fstat(fd)
        return cls(path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)

    def check(self, st: os.stat_result) -> None:
        """Raise if ``st`` (a stat of this file now) shows another file or another version.

        Raises
        ------
        ValueError
            If the file was replaced (another inode or device), resized or modified.
        """
        if (st.st_ino, st.st_dev) != (self.inode, self.device):
            change = "was replaced by another file (renamed over, or deleted and written again)"
        elif st.st_size != self.size:
            change = f"changed size from {self.size} to {st.st_size} bytes"
        elif st.st_mtime_ns != self.mtime_ns:
            change = "was modified (its modification time changed)"
        else:
            return
        raise ValueError(
            f"{self.path}: the file {change} after wtraj.open read its header, so its values "
            "may not be the ones described there; open the checkpoints again once it is written."
        )


def open_identified(path: Path):
    """Open ``path`` for reading its header: ``(binary file, identity)``; close the file after."""
    f = path.open("rb")
    try:
        return f, FileIdentity.of(path, f.fileno())
    except BaseException:
        f.close()
        raise


class OpenFiles:
    """The descriptors of one pass: opened on demand, at most ``limit`` kept, identity-checked.

    A descriptor is checked against its file's :class:`FileIdentity` when it is
    opened, and again (with the path, which a rename may have moved to another
    file) when it is closed, after its reads: when the least recently used is
    closed to make room, and at :meth:`close` for those still open.
    """

    def __init__(self, limit: int | None = None):
        self._limit = open_files_limit() if limit is None else limit
        # identity -> [descriptor, number of reads in progress], least recently used first
        self._open: OrderedDict[FileIdentity, list[int]] = OrderedDict()
        # the reading threads share one descriptor per file
        self._lock = threading.Lock()

    @contextmanager
    def fd(self, source: FileIdentity) -> Iterator[int]:
        """A descriptor of ``source``, not closed while the ``with`` block runs."""
        with self._lock:
            entry = self._open.get(source)
            if entry is None:
                self._make_room()
                entry = self._open[source] = [_open_checked(source), 0]
            else:
                self._open.move_to_end(source)
            entry[1] += 1
        try:
            yield entry[0]
        finally:
            with self._lock:
                entry[1] -= 1

    def close(self, check: bool = False) -> None:
        """Close every descriptor; with ``check``, first raise if a file changed during the pass."""
        with self._lock:
            entries, self._open = list(self._open.items()), OrderedDict()
        failure = None
        for source, (fd, _) in entries:
            try:
                if check and failure is None:
                    _check_after_reads(source, fd)
            except ValueError as error:
                failure = error
            finally:
                os.close(fd)
        if failure is not None:
            raise failure

    def _make_room(self) -> None:
        # descriptors in use by a reading thread stay open, so the count may pass the
        # limit by the number of reading threads at most
        idle = [s for s, (_, users) in self._open.items() if users == 0]
        for source in idle[: max(0, len(self._open) - self._limit + 1)]:
            fd, _ = self._open.pop(source)
            try:
                _check_after_reads(source, fd)
            finally:
                os.close(fd)


def open_files_limit() -> int:
    """Descriptors a pass may keep open: a quarter of ``RLIMIT_NOFILE``, from 16 to 1024."""
    try:
        import resource
    except ImportError:
        # Windows: no resource module; its C runtime allows 512 open files by default
        return 64
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN_FILES
    return max(MIN_OPEN_FILES, min(MAX_OPEN_FILES, soft // 4))


def _open_checked(source: FileIdentity) -> int:
    try:
        fd = os.open(source.path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise ValueError(
            f"{source.path}: the file was deleted or moved after wtraj.open read its header."
        ) from exc
    try:
        source.check(os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_after_reads(source: FileIdentity, fd: int) -> None:
    source.check(os.fstat(fd))
    try:
        source.check(os.stat(source.path))
    except FileNotFoundError as exc:
        raise ValueError(f"{source.path}: the file was deleted or moved while it was being read.") from exc


def read_exactly(fd: int, out: np.ndarray, offset: int, what: str) -> None:
    """Fill the bytes of ``out`` (C-contiguous) from the file at ``offset``.

    ``os.preadv`` releases the GIL and leaves readahead to the kernel, and
    measured faster than copying from a memory map (bench/RESULTS.md).

    Raises
    ------
    ValueError
        If the file ends first (it was truncated after it was opened).
    OSError
        If the read fails (an I/O error), naming ``what``.
    """
    view = memoryview(out).cast("B")
    done = 0
    while done < len(view):
        try:
            n = os.preadv(fd, [view[done:]], offset + done)
        except OSError as error:
            raise OSError(error.errno, f"{what}: reading failed: {error.strerror or error}") from error
        if n == 0:
            raise ValueError(
                f"{what}: the file ended {len(view) - done} bytes early (truncated while being read?)."
            )
        done += n
