"""An output folder that appears complete or not at all.

Every file is written into a hidden temporary folder next to the target; only
when all are written is that folder renamed to the target (an atomic rename on
one file system). An interrupted or failed run leaves no folder that looks like
a finished report, and an existing report is replaced only with ``overwrite``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType


class OutputFolder:
    """Context manager building ``path`` aside and moving it into place on success.

    Parameters
    ----------
    path : str or Path
        The folder to create.
    overwrite : bool
        Replace an existing folder at ``path``; without it an existing path is refused.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is false, or ``path`` is a file.

    Examples
    --------
    >>> with OutputFolder("report/") as out:
    ...     out.write_text("metrics.json", "{}")
    ...     figure.savefig(out.path("plot.png"))
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.target = Path(path)
        self.overwrite = overwrite
        if self.target.exists() or self.target.is_symlink():
            if not self.target.is_dir():
                raise FileExistsError(
                    f"{self.target} exists and is not a folder; choose another output path."
                )
            if not overwrite:
                raise FileExistsError(
                    f"output folder {self.target} already exists; pass --overwrite to replace it "
                    "or choose another --out."
                )
        self._staging: Path | None = None

    def __enter__(self) -> OutputFolder:
        parent = self.target.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=parent))
        # mkdtemp makes the folder private (0700); the report gets the usual permissions
        os.chmod(self._staging, 0o777 & ~_umask())
        return self

    def path(self, name: str) -> Path:
        """Where to write the file ``name`` (inside the staging folder)."""
        if self._staging is None:
            raise RuntimeError("use OutputFolder in a `with` block before writing to it.")
        return self._staging / name

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
        staging, self._staging = self._staging, None
        if exc_type is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return
        if self.target.exists():
            if not self.overwrite:
                shutil.rmtree(staging, ignore_errors=True)
                raise FileExistsError(
                    f"output folder {self.target} appeared while the report was being written; "
                    "nothing was replaced."
                )
            # move the old report aside first, so that a failure here loses nothing
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=staging.parent))
            os.replace(self.target, old / "previous")
            os.replace(staging, self.target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, self.target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def strict_json(value):
    """``value`` with NaN and infinities replaced by None, so that it dumps as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
