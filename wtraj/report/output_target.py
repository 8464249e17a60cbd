"""Where a report may be written, and which existing folder it may replace.

Each report carries a marker file, :data:`MARKER` (JSON: wtraj version, time,
the files written). An existing folder is replaced only if that marker shows
wtraj wrote it and it holds nothing else, and never when it is the current
directory. The output may never be an input, hold one, or lie inside an input
folder, and the place it goes must be writable: all checked before any long
computation, by :func:`prepare_output`.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from wtraj.report.work_folder import ASIDE, dead_work_folders

MARKER = ".wtraj-report"
# a marker lists a few dozen file names; anything larger is not one
MAX_MARKER_BYTES = 1 << 16


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
    # one lstat: other runs replacing the same report swap folders in and out between calls
    found = _lstat(target)
    if found is not None:
        if not stat.S_ISDIR(found.st_mode):
            raise FileExistsError(f"{path} exists and is not a folder; choose another output path.")
        if not overwrite:
            raise FileExistsError(
                f"output folder {path} already exists; pass --overwrite to replace it "
                "or choose another --out."
            )
        check_replaceable(path, target)
    _check_writable(path, target)
    return target


def _lstat(path: Path) -> os.stat_result | None:
    """The status of ``path`` itself (a symlink is not followed), None if nothing is there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _identity(path: Path) -> tuple[int, int] | None:
    found = _lstat(path)
    return None if found is None else (found.st_dev, found.st_ino)


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
                candidates = [dead.report, *sorted(dead.path.glob(f"{ASIDE}*"), reverse=True)]
                complete = [c for c in candidates if c.is_dir() and read_marker(c) is not None]
                if complete:
                    os.rename(complete[0], target)
        except OSError:
            pass
        finally:
            dead.remove()


def _resolved(path: str | os.PathLike) -> Path:
    try:
        target = Path(path).resolve()
    except (OSError, RuntimeError) as error:
        raise ValueError(f"output folder {path}: cannot resolve the path ({error}).") from None
    if target.parent == target:
        raise ValueError(f"output folder {path} is the file system root; choose a folder to create.")
    return target


def _check_outside_inputs(
    shown: str | os.PathLike, target: Path, inputs: Sequence[str | os.PathLike]
) -> None:
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


def check_replaceable(shown: str | os.PathLike, target: Path) -> None:
    """Refuse to replace anything but an unchanged wtraj report that is not the current directory.

    A target that vanishes or is swapped for another folder during the check
    (other runs replacing the same report) passes: there is nothing
    consistent to judge. The final check is made on the folder once moved
    into the run's own work folder, where no other run can swap it
    (:class:`wtraj.report.writer.OutputFolder`).
    """
    cwd = Path.cwd().resolve()
    if cwd == target or target in cwd.parents:
        raise FileExistsError(
            f"output folder {shown} is or holds the current directory; --overwrite never "
            "replaces it: choose another output folder."
        )
    before = _identity(target)
    try:
        entries = list(os.scandir(target))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise FileExistsError(f"{shown} exists and is not a folder; choose another output path.") from None
    marker = read_marker(target)
    if _identity(target) != before:
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


def _check_writable(shown: str | os.PathLike, target: Path) -> None:
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


def write_marker(report: Path) -> None:
    """Write the marker listing the files in ``report``: the last file of a complete report."""
    import wtraj

    marker = {
        "written_by": "wtraj",
        "wtraj_version": wtraj.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": sorted(entry.name for entry in os.scandir(report)),
    }
    (report / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
