"""An output folder that appears complete or not at all, and replaces only wtraj's own.

Every file is written into a hidden work folder beside the target (the same
file system once symlinks are resolved, so the final rename is atomic); only
when all are written is the report renamed to the target. Each report carries
a marker file, :data:`MARKER`, listing the files written. ``overwrite``
replaces an existing folder only if that marker shows wtraj wrote it and it
holds nothing else, and never an input, a folder holding or inside an input,
or the current directory. SIGTERM and SIGHUP raise an exception while a
folder is being built, so that no work folder survives them; the work
folders of runs that died harder (SIGKILL) are removed by the next run (see
:mod:`wtraj.report.work_folder`). :mod:`wtraj.report.signals` has the signal handling.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import stat
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from wtraj.report.signals import signals_deferred, signals_raise
from wtraj.report.work_folder import WorkFolder, dead_work_folders

MARKER = ".wtraj-report"
# a marker lists a few dozen file names; anything larger is not one
MAX_MARKER_BYTES = 1 << 16
# the folder that becomes the report, inside the work folder
REPORT = "report"
# renames retried when other runs replace the same target at the same moment
INSTALL_ATTEMPTS = 16


def prepare_output(
    path: str | os.PathLike, *, overwrite: bool = False, inputs: Sequence[str | os.PathLike] = ()
) -> Path:
    """Check that a report can be written to ``path``, before any long computation.

    Work folders left beside it by wtraj runs that died are removed first; a
    complete report one of them holds is put in place if ``path`` is missing.

    Parameters
    ----------
    path : str or Path
        The output folder; a symlink is followed.
    overwrite : bool
        Whether an existing wtraj report at ``path`` may be replaced.
    inputs : sequence of paths
        The input files and folders: ``path`` may not be one, hold one, or lie inside one.

    Returns
    -------
    Path
        The folder the report will be renamed to (absolute, symlinks resolved).

    Raises
    ------
    ValueError
        ``path`` is, holds or lies inside an input, or cannot be resolved.
    FileExistsError
        ``path`` exists and ``overwrite`` is false, or it is not a wtraj report
        (no marker, other content, a file, the current directory).
    NotADirectoryError, PermissionError
        The folder that would hold ``path`` cannot be written.
    """
    target = _resolved(path)
    _check_outside_inputs(path, target, inputs)
    sweep_leftovers(target)
    if os.path.lexists(target):
        if not target.is_dir():
            # checked again: another run may have just moved its report aside
            if os.path.lexists(target):
                raise FileExistsError(f"{path} exists and is not a folder; choose another output path.")
        elif not overwrite:
            raise FileExistsError(
                f"output folder {path} already exists; pass --overwrite to replace it "
                "or choose another --out."
            )
        else:
            _check_replaceable(path, target)
    _check_writable(path, target)
    return target


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a report folder wtraj wrote, or None if ``folder`` has no valid one."""
    path = Path(folder) / MARKER
    try:
        status = os.lstat(path)
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_MARKER_BYTES:
            return None
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != "wtraj":
        return None
    files = marker.get("files")
    if not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
        return None
    return marker


def sweep_leftovers(target: Path) -> None:
    """Remove the work folders of dead runs beside ``target`` (see :mod:`wtraj.report.work_folder`).

    A run killed between moving the old report aside and renaming the new one
    into place leaves ``target`` missing: the newest complete report in its
    work folder is put back first.
    """
    for dead in dead_work_folders(target):
        try:
            if not os.path.lexists(target):
                candidates = [dead.path / REPORT, *sorted(dead.path.glob("previous-*"), reverse=True)]
                complete = [c for c in candidates if c.is_dir() and read_marker(c) is not None]
                if complete:
                    os.rename(complete[0], target)
        except OSError:
            pass
        finally:
            dead.remove()


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
                os.mkdir(self._work.path / REPORT)
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
        return self._work.path / REPORT / name

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
                        _write_marker(work.path / REPORT)
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
        report = work.path / REPORT
        for attempt in range(INSTALL_ATTEMPTS):
            aside = None
            if os.path.lexists(self.target):
                if not self.overwrite:
                    raise FileExistsError(
                        f"output folder {self.given} appeared while the report was being "
                        "written; nothing was replaced."
                    )
                _check_replaceable(self.given, self.target)
                aside = work.path / f"previous-{attempt:02d}"
                try:
                    os.rename(self.target, aside)
                except FileNotFoundError:
                    aside = None
            try:
                os.rename(report, self.target)
                return
            except OSError as error:
                replaced_meanwhile = error.errno in (errno.EEXIST, errno.ENOTEMPTY)
                if not replaced_meanwhile:
                    if aside is not None and not os.path.lexists(self.target):
                        os.rename(aside, self.target)
                    raise
        raise FileExistsError(
            f"output folder {self.given} was replaced {INSTALL_ATTEMPTS} times by other runs while "
            "this one tried to write it; nothing of this run was kept."
        )


def _resolved(path: str | os.PathLike) -> Path:
    try:
        target = Path(path).resolve()
    except (OSError, RuntimeError) as error:
        raise ValueError(f"output folder {path}: cannot resolve the path ({error}).") from None
    if target.parent == target:
        raise ValueError(f"output folder {path} is the file system root; choose a folder to create.")
    return target


def _check_outside_inputs(shown, target: Path, inputs: Sequence[str | os.PathLike]) -> None:
    for given in inputs:
        try:
            source = Path(given).resolve()
        except (OSError, RuntimeError):
            continue
        if source == target:
            raise ValueError(f"output folder {shown} is the input {given}; choose another output folder.")
        if target in source.parents:
            raise ValueError(
                f"output folder {shown} holds the input {given}; wtraj never writes over its "
                "inputs: choose another output folder."
            )
        if source in target.parents and source.is_dir():
            raise ValueError(
                f"output folder {shown} lies inside the input folder {given}; wtraj writes nothing "
                "into its inputs: choose an output folder outside it."
            )


def _check_replaceable(shown, target: Path) -> None:
    """Refuse to replace anything but an unchanged wtraj report that is not the current directory.

    A target that vanishes during the check (another run moved its report
    aside) passes: there is nothing to replace.
    """
    cwd = Path.cwd().resolve()
    if cwd == target or target in cwd.parents:
        raise FileExistsError(
            f"output folder {shown} is or holds the current directory; --overwrite never "
            "replaces it: choose another output folder."
        )
    try:
        entries = list(os.scandir(target))
    except FileNotFoundError:
        return
    marker = read_marker(target)
    if marker is None and not os.path.lexists(target):
        return
    if marker is None:
        raise FileExistsError(
            f"output folder {shown} was not written by wtraj (it has no valid {MARKER} file); "
            "--overwrite replaces only wtraj's own reports: remove it yourself or choose "
            "another output folder."
        )
    written = {*marker["files"], MARKER}
    foreign = sorted(
        entry.name for entry in entries if entry.name not in written or entry.is_dir(follow_symlinks=False)
    )
    if foreign:
        listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FileExistsError(
            f"output folder {shown} holds files wtraj did not write ({listed}); --overwrite "
            "replaces only an unchanged wtraj report: move them out or choose another output folder."
        )


def _check_writable(shown, target: Path) -> None:
    """Create and remove a folder where the report's work folder will go."""
    existing = target.parent
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot create output folder {shown}: {existing} is not a folder.")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{target.name}.probe-", dir=existing))
    except OSError as error:
        raise PermissionError(
            f"cannot write output folder {shown}: {existing} is not writable "
            f"({error.strerror or error}); choose another place."
        ) from None


def _write_marker(report: Path) -> None:
    import wtraj

    marker = {
        "written_by": "wtraj",
        "wtraj_version": wtraj.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": sorted(entry.name for entry in os.scandir(report)),
    }
    (report / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")


def strict_json(value):
    """``value`` with NaN and infinities replaced by None, so that it dumps as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
