"""The hidden folder a report is built in, and the ones runs that died left behind.

A run builds its output in ``.<target name>.partial-<pid>-<random>`` beside
the target. That folder holds an owner file (:data:`OWNER`: JSON with the
process id and start time) which the run keeps locked with ``flock`` until it
has removed the folder. The kernel drops the lock when the process ends, even
by SIGKILL, so a folder with that name whose owner file can be locked is
provably a leftover of a wtraj run that no longer exists; nothing else is
ever removed. Where ``flock`` does not exist (Windows) or the file system
refuses it, no owner file is written and such a folder is never swept.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:
    fcntl = None

OWNER = ".wtraj-owner"
# inside a work folder: the report being built, and the reports it replaced, moved aside
REPORT = "report"
ASIDE = "previous-"
# an owner file is a few dozen bytes; anything larger is not one
MAX_OWNER_BYTES = 4096


def partial_prefix(target: Path) -> str:
    """The name every work folder of ``target`` starts with."""
    return f".{target.name}.partial-"


class WorkFolder:
    """A work folder beside an output folder, locked by this process while it exists.

    Attributes
    ----------
    path : Path
        The folder: it holds :data:`OWNER`, the report being built (:attr:`report`)
        and the reports it replaced (:meth:`aside`), until it is removed.
    """

    def __init__(self, path: Path, lock: int | None):
        self.path = path
        self._lock = lock
        self._kept = False

    @property
    def report(self) -> Path:
        """The folder the report is built in, renamed to the target when complete."""
        return self.path / REPORT

    def aside(self, attempt: int) -> Path:
        """Where the report being replaced is moved, on the ``attempt``-th try."""
        return self.path / f"{ASIDE}{attempt:02d}"

    @classmethod
    def create(cls, target: Path) -> WorkFolder:
        """A new, locked work folder in ``target``'s parent (which must exist)."""
        path = Path(tempfile.mkdtemp(prefix=f"{partial_prefix(target)}{os.getpid()}-", dir=target.parent))
        try:
            return cls(path, _claim(path))
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise

    def keep(self) -> None:
        """Leave the folder for a later run to sweep: :meth:`remove` only releases the lock."""
        self._kept = True

    def abandon(self) -> None:
        """Leave the folder and make it unsweepable (it holds something not wtraj's)."""
        self._kept = True
        _unlink(self.path / OWNER)

    def remove(self) -> None:
        """Delete the folder, the owner file last, then release the lock.

        If something inside cannot be deleted, the owner file stays, so that
        a later run can still prove the folder is a leftover and retry.
        """
        try:
            if self._kept:
                return
            for child in os.scandir(self.path):
                if child.name == OWNER:
                    continue
                if child.is_dir(follow_symlinks=False):
                    shutil.rmtree(child.path, ignore_errors=True)
                else:
                    _unlink(child.path)
            if {child.name for child in os.scandir(self.path)} <= {OWNER}:
                _unlink(self.path / OWNER)
                os.rmdir(self.path)
        except OSError:
            pass
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None


def dead_work_folders(target: Path) -> Iterator[WorkFolder]:
    """The work folders beside ``target`` whose run has ended, each locked by this process.

    Yields only folders named like a work folder of ``target``, holding an
    owner file written by wtraj whose lock no live process holds.
    """
    if fcntl is None:
        return
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(partial_prefix(target)) and entry.is_dir(follow_symlinks=False):
            lock = _lock_if_dead(Path(entry.path))
            if lock is not None:
                yield WorkFolder(Path(entry.path), lock)


def _claim(path: Path) -> int | None:
    """Write ``path/OWNER`` and hold its lock; None where locks are not available."""
    if fcntl is None:
        return None
    # written and locked under another name first, so that an owner file is never seen unlocked
    pending = path / (OWNER + ".new")
    lock = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        _unlink(pending)
        return None
    try:
        record = {"written_by": "wtraj", "pid": os.getpid(), "started": time.time()}
        os.write(lock, json.dumps(record).encode())
        os.replace(pending, path / OWNER)
    except BaseException:
        os.close(lock)
        raise
    return lock


def _lock_if_dead(folder: Path) -> int | None:
    """A lock on ``folder``'s owner file if it is wtraj's and no live run holds it, else None."""
    # no symlink followed, and no wait on a FIFO of that name
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        lock = os.open(folder / OWNER, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(lock).st_mode):
            raise ValueError("not a regular file")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        record = json.loads(os.read(lock, MAX_OWNER_BYTES))
        if isinstance(record, dict) and record.get("written_by") == "wtraj":
            return lock
    except (OSError, ValueError):
        pass
    os.close(lock)
    return None


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
