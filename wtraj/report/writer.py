"""An output folder that appears complete or not at all, and replaces only wtraj's own.

Every file is written into a hidden work folder beside the target (the same
file system once symlinks are resolved, so the final rename is atomic); only
when all are written is the report, with its marker file, renamed to the
target. Which targets may be written or replaced is decided in
:mod:`wtraj.report.output_target`. SIGTERM and SIGHUP raise an exception while
a folder is being built (:mod:`wtraj.report.signals`), so that no work folder
survives them; those of runs that died harder (SIGKILL) are removed by the
next run (:mod:`wtraj.report.work_folder`).
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from wtraj.report.output_target import check_replaceable, prepare_output, write_marker
from wtraj.report.signals import signals_deferred, signals_raise
from wtraj.report.work_folder import WorkFolder

# renames retried when other runs replace the same target at the same moment
INSTALL_ATTEMPTS = 16


class OutputFolder:
    """Context manager building ``path`` aside and moving it into place on success.

    Parameters
    ----------
    path : str or Path
        The folder to create; a symlink is followed.
    overwrite : bool
        Replace an existing wtraj report at ``path`` (see :func:`prepare_output`).
    inputs : sequence of paths
        Input files and folders, which the output may not be, hold or lie inside.

    Raises
    ------
    ValueError, FileExistsError, NotADirectoryError, PermissionError
        From :func:`prepare_output`, when the folder cannot or may not be written.

    Examples
    --------
    >>> with OutputFolder("report/") as out:
    ...     out.write_text("metrics.json", "{}")
    ...     figure.savefig(out.path("plot.png"))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        inputs: Sequence[str | os.PathLike] = (),
    ):
        self.given = path
        self.target = prepare_output(path, overwrite=overwrite, inputs=inputs)
        self.overwrite = overwrite
        self._work: WorkFolder | None = None
        self._signals = ExitStack()

    def __enter__(self) -> OutputFolder:
        # SIGTERM while building must unwind through __exit__, which removes the work folder
        self._signals.enter_context(signals_raise())
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            with signals_deferred():
                self._work = WorkFolder.create(self.target)
                # the report gets the usual permissions (the work folder is private)
                os.mkdir(self._work.report)
        except BaseException:
            # a signal held back above arrives here, with the work folder made
            work, self._work = self._work, None
            try:
                if work is not None:
                    with signals_deferred():
                        work.remove()
            finally:
                self._signals.close()
            raise
        return self

    def path(self, name: str) -> Path:
        """Where to write the file ``name`` (inside the work folder)."""
        if self._work is None:
            raise RuntimeError("use OutputFolder in a `with` block before writing to it.")
        return self._work.report / name

    def write_text(self, name: str, text: str) -> Path:
        path = self.path(name)
        path.write_text(text, encoding="utf-8")
        return path

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.path(name)
        path.write_bytes(data)
        return path

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        work, self._work = self._work, None
        try:
            with signals_deferred():
                try:
                    if exc_type is None:
                        write_marker(work.report)
                        self._install(work)
                finally:
                    work.remove()
        finally:
            self._signals.close()

    def _install(self, work: WorkFolder) -> None:
        """Rename the finished report to the target, moving a replaced one into ``work``.

        Other runs may replace the same target at the same moment: each
        attempt moves whatever report is there aside and retries, so that the
        target always ends as one complete report.
        """
        report = work.report
        for attempt in range(INSTALL_ATTEMPTS):
            aside = None
            if os.path.lexists(self.target):
                if not self.overwrite:
                    raise FileExistsError(
                        f"output folder {self.given} appeared while the report was being "
                        "written; nothing was replaced."
                    )
                aside = self._move_aside(work, attempt)
            try:
                os.rename(report, self.target)
                return
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    # another run's report arrived in between: move that one aside too
                    continue
                if aside is not None:
                    _put_back(aside, self.target, work, sweepable=True)
                raise
        raise FileExistsError(
            f"output folder {self.given} was replaced {INSTALL_ATTEMPTS} times by other runs while "
            "this one tried to write it; nothing of this run was kept."
        )

    def _move_aside(self, work: WorkFolder, attempt: int) -> Path | None:
        """Move the folder at the target into ``work`` if it may be replaced; None if it vanished.

        The folder is checked where it lands, in this run's own work folder:
        at the target, another run could swap it for its own between the
        check and the move.
        """
        aside = work.aside(attempt)
        try:
            os.rename(self.target, aside)
        except FileNotFoundError:
            return None
        try:
            check_replaceable(self.given, aside)
        except Exception:
            # whatever failed, a folder that may not be replaced must not stay in a work folder
            _put_back(aside, self.target, work, sweepable=False)
            raise
        return aside


def _put_back(aside: Path, target: Path, work: WorkFolder, *, sweepable: bool) -> None:
    """Move a folder taken from ``target`` back; failing that, make sure it is never deleted.

    A wtraj report (``sweepable``) stays in the work folder for the next run
    to restore; any other folder stays where it is, in a work folder no run
    will sweep, and the error says where.
    """
    try:
        os.rename(aside, target)
    except OSError as error:
        if sweepable:
            work.keep()
        else:
            work.abandon()
            raise FileExistsError(
                f"output folder {target} was taken by another program while it was being "
                f"replaced; the folder that was there is now {aside}: move it back yourself."
            ) from error


def strict_json(value):
    """``value`` with NaN and infinities replaced by None, so that it dumps as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
